"""Local services for development, the demo and the tests, all on 127.0.0.1.

anvil (an Arbitrum-like dev chain) with a funded hot wallet, a moto S3 server, a local
Airflow 3 home, PostgreSQL and Redis for the CeleryExecutor stack (``backends``), the
``make up`` / ``make down`` stack that runs them in the background, and
``make demo`` (``demo``), which runs the whole job on them once. Nothing here imports
Airflow: Airflow runs in its own processes (or, for the demo, behind
``openpool.airflow.demo``); this package only prepares environments and starts processes.
"""
