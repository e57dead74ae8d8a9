-- pg_sleep(sleep_seconds) keeps this query running (cancel and timeout tests).
select customer, sum(amount) as total, count(*) as orders
from {{ ref('stg_orders') }}
cross join (select pg_sleep({{ var('sleep_seconds', 0) }})) as pause
group by customer
