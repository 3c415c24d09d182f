"""The state of this process's life that requests must see: is it about to stop?"""


class Lifecycle:
    """Shared by readiness, the drain middleware and the shutdown hook of one process.

    `draining` turns true when the process was asked to stop (SIGTERM): readiness answers 503
    from then on so the load balancer stops sending, while requests are still served.
    `bootstrapped` turns true once the start-up work that needs the database has run.
    """

    def __init__(self) -> None:
        self.draining = False
        self.bootstrapped = False

    def is_draining(self) -> bool:
        """Whether the process is draining (a callable for the middleware)."""
        return self.draining
