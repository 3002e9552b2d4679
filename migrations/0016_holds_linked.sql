-- A hold on a call covers the calls an attended transfer linked to it. After such a transfer
-- the conversation goes on in the other call's recording (docs/recordings.md), and the search
-- shows the two as one case; a hold naming one of them (its call id, a client's number the
-- other call never saw, a tag given to one) kept only that one, and the purge could delete
-- the rest of the conversation. Links are kept on both calls (linked_calls), so one hop
-- finds them; a hold that matches any of them keeps them all.
ALTER FUNCTION call_held(calls) RENAME TO call_held_itself;

CREATE FUNCTION call_held(c calls) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT call_held_itself(c) OR (c.linked_calls IS NOT NULL AND EXISTS (
        SELECT 1 FROM calls x WHERE x.call_id = ANY (c.linked_calls) AND call_held_itself(x)))
$$;
