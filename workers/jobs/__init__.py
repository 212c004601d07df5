"""Job functions, one module per resource; each is a `JobSpec` made by the `job` decorator."""
