-- plan_batches
SELECT MIN(line_id) AS first_line, MAX(line_id) AS last_line
FROM (SELECT line_id, (ROW_NUMBER() OVER (ORDER BY line_id) - 1) / ? AS chunk FROM lines) AS numbered
GROUP BY chunk ORDER BY first_line;

-- lock_unbilled_charges
-- not used on this backend

-- insert_invoices
INSERT INTO invoices
       (id, line_id, period, status, total, amount_paid, due_date, billing_run_id, created_at)
SELECT 'inv_' || ? || substr(lower(hex(randomblob(7))), 1, 13), l.line_id, ?, 'open',
       CASE WHEN l.base_monthly_fee > 0 AND l.created_at < ? AND (l.terminated_at IS NULL OR l.terminated_at >= ?) THEN l.base_monthly_fee ELSE 0 END + COALESCE(billable.amount, 0), 0,
       ?, ?, ?
FROM lines l
LEFT JOIN (SELECT c.line_id, SUM(c.amount - c.refunded_amount) AS amount FROM charges c
           WHERE c.line_id BETWEEN ? AND ? AND c.period = ? AND c.status = 'succeeded' AND c.billing_status IN ('unbilled') AND c.amount > c.refunded_amount GROUP BY c.line_id) AS billable ON billable.line_id = l.line_id
WHERE l.line_id BETWEEN ? AND ? AND (
    (l.base_monthly_fee > 0 AND l.created_at < ? AND (l.terminated_at IS NULL OR l.terminated_at >= ?)) OR billable.line_id IS NOT NULL
    OR EXISTS (SELECT 1 FROM refunds r JOIN charges c ON c.id = r.charge_id
               WHERE c.line_id = l.line_id AND r.credited = ? AND c.billing_status NOT IN ('unbilled') AND c.line_id BETWEEN ? AND ?))
ON CONFLICT (line_id, period) DO NOTHING
RETURNING id, total;

-- insert_base_fees
INSERT INTO invoice_items (invoice_id, position, kind, charge_id, refund_id, merchant_id, description, amount, tax_rate, collected_amount, collection_status, paid_out_amount, billing_run_id)
SELECT i.id, 0, 'base_fee', NULL, NULL, NULL, '回線月額料金', l.base_monthly_fee, ?,
       0, 'open', 0, ?
FROM invoices i JOIN lines l ON l.line_id = i.line_id
WHERE i.period = ? AND i.line_id BETWEEN ? AND ? AND l.base_monthly_fee > 0 AND l.created_at < ? AND (l.terminated_at IS NULL OR l.terminated_at >= ?)
ON CONFLICT (invoice_id, position) DO NOTHING
RETURNING invoice_id, kind, merchant_id, charge_id, refund_id, amount, tax_rate;

-- insert_charge_items
INSERT INTO invoice_items (invoice_id, position, kind, charge_id, refund_id, merchant_id, description, amount, tax_rate, collected_amount, collection_status, paid_out_amount, billing_run_id)
SELECT i.id, (CASE WHEN i.billing_run_id = ? THEN 0 ELSE
          COALESCE((SELECT MAX(x.position) FROM invoice_items x WHERE x.invoice_id = i.id), 0) END) + ROW_NUMBER() OVER (PARTITION BY i.id ORDER BY c.created_at, c.id),
       'charge', c.id, NULL, c.merchant_id, c.description, c.amount - c.refunded_amount,
       ?, 0, 'open', 0, ?
FROM charges c JOIN invoices i ON i.line_id = c.line_id AND i.period = ? AND i.line_id BETWEEN ? AND ?
WHERE c.line_id BETWEEN ? AND ? AND c.period = ? AND c.status = 'succeeded' AND c.billing_status IN ('unbilled') AND c.amount > c.refunded_amount
ON CONFLICT (charge_id) DO NOTHING
RETURNING invoice_id, kind, merchant_id, charge_id, refund_id, amount, tax_rate;

-- insert_credit_items
INSERT INTO invoice_items (invoice_id, position, kind, charge_id, refund_id, merchant_id, description, amount, tax_rate, collected_amount, collection_status, paid_out_amount, billing_run_id)
SELECT i.id,
       (SELECT COALESCE(MAX(x.position), 0) FROM invoice_items x WHERE x.invoice_id = i.id)
         + ROW_NUMBER() OVER (PARTITION BY i.id ORDER BY r.created_at, r.id),
       'credit', NULL, r.id, c.merchant_id, '返金 ' || c.description, -r.amount, original.tax_rate,
       0, 'open', 0, ?
FROM refunds r
JOIN charges c ON c.id = r.charge_id
JOIN invoice_items original ON original.charge_id = c.id
JOIN invoices i ON i.line_id = c.line_id AND i.period = ? AND i.line_id BETWEEN ? AND ?
WHERE r.credited = ? AND c.billing_status NOT IN ('unbilled') AND c.line_id BETWEEN ? AND ? AND original.invoice_id <> i.id
ON CONFLICT (refund_id) DO NOTHING
RETURNING invoice_id, kind, merchant_id, charge_id, refund_id, amount, tax_rate;

-- waiting_refunds
SELECT r.id, r.charge_id, c.period, c.status, c.billing_status, c.amount, c.refunded_amount
FROM refunds r JOIN charges c ON c.id = r.charge_id
WHERE r.credited = ? AND c.line_id BETWEEN ? AND ?;

-- mark_refunds_credited
UPDATE refunds SET credited = ? WHERE id IN (SELECT value FROM json_each(?));

-- item_sums
SELECT x.invoice_id, x.tax_rate, SUM(x.amount) AS amount FROM invoice_items x
WHERE x.invoice_id IN (SELECT value FROM json_each(?)) GROUP BY x.invoice_id, x.tax_rate;

-- read_invoices
SELECT id, total, status FROM invoices WHERE id IN (SELECT value FROM json_each(?));

-- update_invoice_totals
UPDATE invoices SET total = v.total, status = v.status
FROM (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS total, json_extract(value, '$[2]') AS status FROM json_each(?)) AS v WHERE invoices.id = v.id;

-- upsert_invoice_taxes
INSERT INTO invoice_taxes (invoice_id, rate, taxable_total, tax)
SELECT v.invoice_id, v.rate, v.taxable_total, v.tax FROM (SELECT json_extract(value, '$[0]') AS invoice_id, json_extract(value, '$[1]') AS rate, json_extract(value, '$[2]') AS taxable_total, json_extract(value, '$[3]') AS tax FROM json_each(?)) AS v WHERE true
ON CONFLICT (invoice_id, rate) DO UPDATE SET taxable_total = excluded.taxable_total, tax = excluded.tax
WHERE invoice_taxes.taxable_total <> excluded.taxable_total;

-- move_charges_to_billed
UPDATE charges SET billing_status = 'billed' WHERE id IN (SELECT value FROM json_each(?)) AND billing_status IN ('unbilled');

-- billed_events
INSERT INTO events (id, merchant_id, type, object_id, data, created_at)
SELECT 'evt_' || ? || substr(lower(hex(randomblob(7))), 1, 13), c.merchant_id, 'charge.billed', c.id, json_object('object', json_object('id', c.id, 'object', 'charge', 'status', c.status, 'amount', c.amount, 'currency', c.currency, 'description', c.description, 'merchant_reference', c.merchant_reference, 'metadata', json(c.metadata), 'return_url', c.return_url, 'confirmation_url', c.confirmation_url, 'failure_code', c.failure_code, 'billing_status', c.billing_status, 'subscription', c.subscription_id, 'refunded_amount', c.refunded_amount, 'payout_id', c.payout_id, 'period', c.period, 'created', CAST(strftime('%s', c.created_at) AS INTEGER))), ?
FROM charges c WHERE c.id IN (SELECT value FROM json_each(?));
