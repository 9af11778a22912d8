"""Webhooks: the ISPs' endpoints and the signed events sent to them.

- events.py: the catalogue (which change is which event) and what a delivery carries;
- destinations.py: where events may go (URL and address safety);
- sending.py: one attempt, signed, within its timeout;
- worker.py: the outbox's fan-out, fair sharing of attempts, retries, the circuit, the CLI;
- views.py: the API (register, list, delete, deliveries, redeliver).
Only the CLI imports the worker.
"""
