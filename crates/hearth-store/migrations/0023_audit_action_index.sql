-- Entries of one kind in a chain (legal requests), found without reading the whole chain.
CREATE INDEX audit_log_action ON audit_log(scope, action);
