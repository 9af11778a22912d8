"""What the tests share, one module per kind of help: client.py (calling the API, the envelope
assertions), database.py (reading tables back, writing columns directly), webhooks.py (a
webhook receiver and the worker), processes.py (real gunicorn and worker processes) and
catalogue.py (every route of the API, which the matrices run over). tests/conftest.py holds
the fixtures only."""
