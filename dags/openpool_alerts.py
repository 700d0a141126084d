"""The alerts DAG: every 5 minutes, each new alert condition sent once. No I/O at import.

Slack and e-mail are configured by Airflow connections (see the README's *Alerts*); to
add any other Airflow notifier, pass it here: ``build_alerts_dag(notifiers=[...])``.
"""

from openpool.airflow.alerts_dag import build_alerts_dag

openpool_alerts = build_alerts_dag()
