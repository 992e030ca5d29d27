-- Outbound destinations: a notify_url or base_url on the server's own
-- machine or network is refused when set (22023, naming the field) unless the
-- superuser-only pay.allow_private_destinations is on; numeric hosts that are
-- not dotted quads and URLs whose host is unclear are refused always.
CREATE FUNCTION pg_temp.verdict(url text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pay._check_destination('notify_url', url);
  RETURN 'allowed';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

SET pay.allow_private_destinations = off;
SELECT url, pg_temp.verdict(url) FROM (VALUES
  -- public: allowed
  ('https://shop.example/notify'),
  ('https://Shop.Example.:8443/notify?x=1#y'),
  ('http://user:pw@shop.example/n'),
  ('https://93.184.216.34/notify'),
  ('https://[2606:2800:220:1:248:1893:25c8:1946]:443/n'),
  ('https://172.32.0.1/'),
  ('https://100.128.0.1/'),
  ('https://localhost.example/'),
  ('https://xn--bcher-kva.example/'),
  -- loopback
  ('http://127.0.0.1:5432/'),
  ('http://127.255.255.254/'),
  ('http://[::1]/'),
  ('http://[::ffff:127.0.0.1]/'),
  ('http://[::ffff:7f00:1]/'),
  ('http://[::127.0.0.1]/'),
  ('http://evil@127.0.0.1/'),
  -- link-local: cloud metadata
  ('http://169.254.169.254/latest/meta-data/'),
  ('http://[fe80::1]/'),
  ('http://[::ffff:169.254.169.254]/'),
  ('http://[64:ff9b::a9fe:a9fe]/'),
  -- private
  ('http://10.0.0.1/'),
  ('http://172.16.0.1/'),
  ('http://172.31.255.255/'),
  ('http://192.168.1.1/'),
  ('http://100.100.100.200/'),
  ('http://[fc00::1]/'),
  ('http://[fd12:3456::1]/'),
  ('http://[2002:c0a8:101::1]/'),
  -- unspecified
  ('http://0.0.0.0:5432/'),
  ('http://0.1.2.3/'),
  ('http://[::]/'),
  -- localhost by name
  ('http://localhost:5432/'),
  ('http://LOCALHOST./'),
  ('http://db.localhost/'),
  -- numbers resolvers read as addresses: refused whatever they mean
  ('http://2130706433/'),
  ('http://0x7f.1/'),
  ('http://0x7f000001/'),
  ('http://017700000001/'),
  ('http://0177.0.0.1/'),
  ('http://127.1/'),
  ('http://127.0.0.01/'),
  ('http://1.2.3.256/'),
  ('http://shop.example.123/'),
  -- hosts read differently by different parsers: refused
  ('http://a@b@127.0.0.1/'),
  ('http://shop.example\@127.0.0.1/'),
  ('http://[::1%25lo]/'),
  ('http://[::1/'),
  ('http://127.0.0.1%2e/'),
  ('http://bücher.example/'),
  ('http://shop..example/'),
  ('http://:80/'),
  ('http://shop.example:80x/'),
  ('ftp://shop.example/')
) AS t(url);

-- The field is named, nothing is written.
SELECT pay.create_merchant('dest_shop', 'Destinations', 'http://169.254.169.254/notify');
SELECT pay.create_gateway('dest_gw', 'generic', 'http://[::1]:5432/');
SELECT pay.create_gateway('dest_gw', 'generic', 'http://0x7f.1/');
SELECT (SELECT count(*) FROM pay.merchants WHERE code = 'dest_shop') AS merchants,
       (SELECT count(*) FROM pay.gateways WHERE name = 'dest_gw') AS gateways;
SELECT pay.create_merchant('dest_shop', 'Destinations', 'https://shop.example/notify') > 0 AS public_ok;

-- A superuser may allow private destinations; numeric forms stay refused.
SET pay.allow_private_destinations = on;
SELECT url, pg_temp.verdict(url) FROM (VALUES
  ('http://127.0.0.1:5432/'), ('http://[::1]/'), ('http://169.254.169.254/'), ('http://10.0.0.1/'),
  ('http://localhost/'), ('http://0x7f.1/'), ('http://a@b@127.0.0.1/')) AS t(url);
SELECT pay.create_gateway('dest_gw', 'generic', 'http://127.0.0.1:8080/') > 0 AS allowed_gateway;
RESET pay.allow_private_destinations;

-- Nobody else may change it (42501), pay_admin included.
CREATE ROLE dest_nobody;
GRANT pay_admin TO dest_nobody;
SET pay.allow_private_destinations = off;
SET ROLE dest_nobody;
DO $$
BEGIN
  SET pay.allow_private_destinations = on;
  RAISE NOTICE 'NO ERROR';
EXCEPTION WHEN OTHERS THEN
  RAISE NOTICE '%: %', SQLSTATE, SQLERRM;
END $$;
SELECT pay.create_merchant('dest_admin', 'Destinations', 'http://127.0.0.1/notify');
SHOW pay.allow_private_destinations;
RESET ROLE;
RESET pay.allow_private_destinations;
DROP ROLE dest_nobody;
