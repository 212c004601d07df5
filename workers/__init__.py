"""Background jobs (arq). Imports `app`; `app` never imports `workers`."""
