"""Alerts: which conditions an operator must hear about, and the record of what was sent.

``health`` reads each partition's freshness and what it set aside; ``conditions`` turns the
state into the conditions that hold now; ``state`` is the atomic record of sent alerts;
``service`` sends each condition once. No Airflow here: delivery is a callback, which the
Airflow adapter (``openpool.airflow.alerts_dag``) fills with Airflow notifiers.
"""
