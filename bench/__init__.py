"""pushgate's benchmark harness: scenarios, upstream sinks and the result table (`make bench`)."""
