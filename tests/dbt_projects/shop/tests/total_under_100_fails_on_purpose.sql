-- Fails on purpose: bob's orders add up to more than 100.
select customer, total from {{ ref('customer_totals') }} where total > 100
