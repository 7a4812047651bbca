-- Retention: ended calls are pruned by age, oldest first, in small batches.
CREATE INDEX calls_ended ON calls(ended_at) WHERE ended_at IS NOT NULL;
