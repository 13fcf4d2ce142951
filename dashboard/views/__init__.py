"""The console's pages, one module per page; each view is thin: a form reads the input, a
selector reads the data, a service makes the change."""
