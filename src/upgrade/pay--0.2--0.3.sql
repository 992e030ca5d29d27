-- pay 0.2 -> 0.3 (ALTER EXTENSION pay UPDATE TO '0.3').
\echo Use "ALTER EXTENSION pay UPDATE TO '0.3'" to load this file. \quit

-- Orders: the buyer's next step and the PSP's reason for a refusal.
ALTER TABLE pay.orders ADD COLUMN next_action jsonb, ADD COLUMN failure_reason text;
COMMENT ON COLUMN pay.orders.next_action IS 'the buyer''s next step from the PSP''s answer (type qr_code, code_url, client_secret or redirect); NULL until the PSP answered';
COMMENT ON COLUMN pay.orders.failure_reason IS 'the PSP''s reason when it refused the payment';
