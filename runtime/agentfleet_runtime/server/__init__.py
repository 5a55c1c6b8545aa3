"""The task API: submission, admission, approvals routes and the OpenAPI document."""
