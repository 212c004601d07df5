"""Job functions, one module per resource; each is a `JobSpec` made by `workers.context.job`."""
