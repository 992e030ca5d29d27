-- test/bench/experiments/checks_in_trigger.sql — NOT a patch: run after
-- speedups.sql to measure what the remaining CHECK constraints of the hot
-- tables cost per statement (about 48k instructions per INSERT or UPDATE of
-- pay.orders, 20-30k per INSERT into pay.postings or pay.entries), i.e. what
-- moving these tests into the C triggers that already run on those rows
-- would save.  Dropping them without that move would lose the checks.
ALTER TABLE pay.orders DROP CONSTRAINT orders_amount_check, DROP CONSTRAINT orders_check;
ALTER TABLE pay.postings DROP CONSTRAINT postings_ref_check;
ALTER TABLE pay.entries DROP CONSTRAINT entries_amount_check;
