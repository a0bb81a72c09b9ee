-- Timelapses: the sealed camera frames an agent took of a job, each signed with the job's id, kept
-- with the job. A frame's bytes live in the blob directory under their hash (as sealed files do);
-- the manifest is the agent's signed snapshot manifest, opaque to the server.
CREATE TABLE timelapses (
    job_id TEXT PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    -- Frames that arrived, kept or not; a frame's seq is its place among them.
    arrived BIGINT NOT NULL,
    -- Keep the frames whose seq is a multiple of stride: doubled (and the frames in between
    -- dropped) whenever the job reaches the most frames a timelapse keeps, so a long print's
    -- timelapse stays evenly spaced.
    stride BIGINT NOT NULL,
    -- Frames not kept because the organisation's storage quota was full.
    over_quota BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX timelapses_org ON timelapses(org_id);

CREATE TABLE timelapse_frames (
    job_id TEXT NOT NULL REFERENCES timelapses(job_id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    org_id TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size BIGINT NOT NULL,
    manifest TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (job_id, seq)
);
CREATE INDEX timelapse_frames_sha ON timelapse_frames(sha256);
CREATE INDEX timelapse_frames_org ON timelapse_frames(org_id);
