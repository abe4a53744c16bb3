"""vector-primer's HTTP service: a thin FastAPI shell over the engine in `indexer`.

Build the app with `service.app.create_app(settings)`; importing this package loads nothing heavy.
"""
