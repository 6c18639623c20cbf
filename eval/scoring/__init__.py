"""Score: per-image mask metrics and their aggregates."""
