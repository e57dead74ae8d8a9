select id, customer, amount, status
from {{ ref('raw_orders') }}
where amount >= {{ var('min_amount', 0) }}
