-- A job's sealed label (what members see of the file it prints: name and thumbnail), opaque to
-- the server: the sealed object's hash (a blob of the organisation, kept while the job's payload
-- is) and the submitter's signed manifest over it. NULL: the job has none.
ALTER TABLE jobs ADD COLUMN label_sha256 TEXT;
ALTER TABLE jobs ADD COLUMN label_manifest TEXT;
