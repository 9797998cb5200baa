"""SQL execution in a sandbox, result comparison, extraction from model output, and text metrics."""
