-- 0004_jobs: resync jobs run by obmend (jobs/jobs.hpp, jobs/runner.hpp, docs/operations.md):
-- who runs a job, which schedule asked for it, NOTIFY on every new job and state change, and
-- the values obmen.jobs accepts.

ALTER TABLE obmen.jobs
  ADD COLUMN worker   text,
  ADD COLUMN schedule text;
COMMENT ON COLUMN obmen.jobs.worker IS 'The obmend that claimed the job (host:pid); NULL while queued.';
COMMENT ON COLUMN obmen.jobs.schedule IS 'The schedule (config `schedules:`) that enqueued the job, as source/entity/mode; NULL for jobs asked for with obmenctl resync.';

-- Older rows may carry other values; new rows are checked (NOT VALID skips the existing ones).
ALTER TABLE obmen.jobs
  ADD CONSTRAINT jobs_entity CHECK (entity IN ('catalog', 'prices', 'stock', 'counterparties', 'orders', 'all')) NOT VALID,
  ADD CONSTRAINT jobs_mode CHECK (mode IN ('full', 'incremental')) NOT VALID;

COMMENT ON COLUMN obmen.jobs.entity IS 'What to resync: catalog, prices, stock, counterparties, orders or all (docs/operations.md says what each means for a source type).';
COMMENT ON COLUMN obmen.jobs.state IS 'queued, running, done, failed or cancelled. obmenctl jobs cancel sets cancelled; a running job notices it at its next step and rolls the step back.';
COMMENT ON COLUMN obmen.jobs.progress IS 'Progress of a running job, kept when it ends: {"percent", "step", "text", …} (docs/operations.md).';
COMMENT ON COLUMN obmen.jobs.result IS 'Per-entity outcome: {"<entity>": {"summary": "…", …counts}} (docs/operations.md); for a dry run the counts of what would change.';
COMMENT ON COLUMN obmen.jobs.requested_by IS 'Who asked: the user name from obmenctl, or "schedule".';

-- The scheduler's slots: obmen.bookmarks rows with entity 'schedule:<entity>:<mode>' whose
-- updated_at is the last time a daemon enqueued that schedule's job (claimed with UPDATE …
-- RETURNING, so several daemons sharing the database enqueue it once).

-- ─── notifications ─────────────────────────────────────────────────────────────────────────
-- obmen_jobs '<id>' for every new queued job: the runners of every obmend LISTEN to it.
-- obmen_job_events '<id>:<state>' for every change of a job (state or progress): obmenctl
-- resync --wait follows a job with it.

CREATE FUNCTION obmen.notify_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.state = 'queued' THEN
      PERFORM pg_notify('obmen_jobs', NEW.id::text);
    END IF;
  ELSIF NEW.state IS DISTINCT FROM OLD.state OR NEW.progress IS DISTINCT FROM OLD.progress THEN
    PERFORM pg_notify('obmen_job_events', NEW.id::text || ':' || NEW.state);
    IF NEW.state = 'queued' THEN
      PERFORM pg_notify('obmen_jobs', NEW.id::text);
    END IF;
  END IF;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION obmen.notify_jobs() IS 'NOTIFY obmen_jobs ''<id>'' when a job is queued; NOTIFY obmen_job_events ''<id>:<state>'' when a job''s state or progress changes.';
CREATE TRIGGER jobs_notify AFTER INSERT OR UPDATE ON obmen.jobs
  FOR EACH ROW EXECUTE FUNCTION obmen.notify_jobs();
