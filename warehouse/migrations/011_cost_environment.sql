-- The deployment environment of each priced call, so that spend can be reported and filtered by
-- environment like by department or agent (the dashboards' shared filters include it).
-- `environment` is the call span's canonical column (resource `deployment.environment.name`),
-- carried by the cost job into priced_calls, and part of daily_costs' key, so that every daily row
-- still equals, exactly, the sum of the priced calls of its key.
--
-- Rows derived before have no environment (NULL) until the cost job derives them again. Clearing
-- the job's inputs digest makes its next run a full one (analytics.jobs._full_reason): it replaces
-- the priced calls of every stored span, and daily_costs moves with them as in any run. The calls
-- of spans that retention has already deleted keep a NULL environment: cost facts outlive raw
-- telemetry, and the environment they ran in is no longer known.

ALTER TABLE priced_calls ADD COLUMN environment VARCHAR;
ALTER TABLE daily_costs ADD COLUMN environment VARCHAR;

UPDATE job_state SET inputs_digest = NULL WHERE job = 'costs';
