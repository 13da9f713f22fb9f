"""The request service: intake, identity verification, deadlines, execution, proof.

The API and the CLI are thin and call the functions of `workflow`; execution runs as a task
(`lawful.tasks`), in process on the embedded default or on a Celery worker.
"""
