-- Template test cases stored with a prompt (SQLite dialect).
--
-- One row per prompt that has tests: `cases` is the JSON array of test cases (params plus
-- assertions on the rendered output), run on every new version. For a confidential or
-- restricted prompt the cases can hold sensitive params and expectations, so they are sealed like
-- version content: `cases` holds the JSON placeholder 'null', `key_id`, `nonce` and `ciphertext`
-- the AES-256-GCM seal, with the prompt id as associated data. A clear row has all three NULL.
-- No row: the prompt has no tests. Deleting the prompt deletes its tests.

CREATE TABLE prompt_tests (
    prompt_id  BLOB NOT NULL PRIMARY KEY REFERENCES prompts (id) ON DELETE CASCADE,
    cases      TEXT NOT NULL,
    key_id     TEXT,
    nonce      BLOB,
    ciphertext BLOB,
    updated_at TEXT NOT NULL,
    CHECK (
        (key_id IS NULL AND nonce IS NULL AND ciphertext IS NULL)
        OR (key_id IS NOT NULL AND nonce IS NOT NULL AND ciphertext IS NOT NULL
            AND cases = 'null')
    )
) STRICT;
