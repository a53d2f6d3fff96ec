"""Full-text search over my conversations' titles and messages (and notes), ranked, with snippets."""
