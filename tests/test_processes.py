"""The helpers that start real servers for tests wait for what a client needs: a listener."""

import socket

from tests.processes import accepts


def test_a_bound_socket_refuses_connections_until_it_listens() -> None:
    # uvicorn's parent binds the socket its workers share and a worker listens on it only after
    # its app's lifespan has started: a port can be bound, with `startup` logged, and refuse.
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        assert not accepts(port)
        bound.listen()
        assert accepts(port)
