-- Older epoch keys sealed (age) by an admin device to one member's device(s), so that a member
-- added later can open the files of the epochs before they joined ("history"). Opaque to the
-- server, like org_epochs; a membership's grants go with the membership.
CREATE TABLE epoch_grants (
    org_id TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    sealed TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, epoch, user_id),
    FOREIGN KEY (org_id, epoch) REFERENCES org_epochs(org_id, epoch) ON DELETE CASCADE
);
