-- Priced spend per UTC day and every dimension spend is reported and budgeted by, kept by the cost
-- job in the same transaction as the priced_calls rows it sums: spend reports, budgets, forecasts
-- and anomalies read thousands of rows here instead of summing millions of calls.
-- Each batch of the cost job subtracts the rows it deletes from priced_calls and adds the rows it
-- inserts, so every row here equals, exactly (DECIMAL), the sum of the priced_calls rows of its key.
-- Token sums are 0, not NULL, when no call reported any: the reports coalesce to 0 all the same.

CREATE TABLE daily_costs (
    day                 DATE NOT NULL,
    agent_id            VARCHAR,
    match_status        VARCHAR NOT NULL,
    observed_identity   VARCHAR,
    department_id       VARCHAR,
    cost_centre         VARCHAR,
    provider            VARCHAR,
    model               VARCHAR,
    cost_usd            DECIMAL(38, 12),       -- sum of the priced calls; NULL when none is priced
    calls               BIGINT NOT NULL,
    unpriced_calls      BIGINT NOT NULL,
    input_tokens        BIGINT NOT NULL,
    output_tokens       BIGINT NOT NULL,
    cache_read_tokens   BIGINT NOT NULL,
    cache_write_tokens  BIGINT NOT NULL,
    reasoning_tokens    BIGINT NOT NULL
);

INSERT INTO daily_costs
SELECT day, agent_id, match_status, observed_identity, department_id, cost_centre, provider, model,
       sum(cost_usd), count(*), count(*) FILTER (WHERE cost_usd IS NULL),
       coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0),
       coalesce(sum(cache_read_tokens), 0), coalesce(sum(cache_write_tokens), 0),
       coalesce(sum(reasoning_tokens), 0)
FROM priced_calls
GROUP BY ALL
ORDER BY day;
