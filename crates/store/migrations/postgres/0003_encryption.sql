-- Encryption at rest for the content of confidential and restricted versions (PostgreSQL
-- dialect).
--
-- A sealed version keeps its content only as AES-256-GCM ciphertext: `content` holds the JSON
-- placeholder 'null', `key_id` names the key it was sealed under, `nonce` is its random 96-bit
-- nonce and `ciphertext` the encrypted canonical content JSON with the tag appended. The
-- associated data is the version id, so a ciphertext does not open in another row. Config,
-- parameter schema, notes and diff_hash stay in clear (they are not the prompt's text; the
-- diff_hash is computed from the plaintext as before). A clear version has all three NULL.

ALTER TABLE prompt_versions
    ADD COLUMN key_id TEXT,
    ADD COLUMN nonce BYTEA,
    ADD COLUMN ciphertext BYTEA,
    ADD CONSTRAINT prompt_versions_sealed_check CHECK (
        (key_id IS NULL AND nonce IS NULL AND ciphertext IS NULL)
        OR (key_id IS NOT NULL AND nonce IS NOT NULL AND ciphertext IS NOT NULL
            AND content = 'null'::jsonb)
    );

-- Key rotation looks for versions sealed under another key than the current one.
CREATE INDEX prompt_versions_key_id_idx ON prompt_versions (key_id) WHERE key_id IS NOT NULL;
