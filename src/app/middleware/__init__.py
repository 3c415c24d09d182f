"""The request pipeline's layers: pure ASGI classes, one per module.

Each knows only its constructor arguments; `app.pipeline` installs them in order.
"""
