"""The fake PSP's configuration: a JSON file naming secrets and key files
(paths relative to the file; a value that is itself PEM text is used as is)."""

import json
import os

import signing

DEFAULT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "config.json")


class ConfigError(Exception):
    """A configuration file that cannot be used."""


class Config:
    """Parsed configuration with the keys loaded."""

    def __init__(self, data, base_dir):
        self.raw = data
        self.base_dir = base_dir
        st = data.get("stripe") or {}
        self.stripe_api_key = st.get("api_key")
        self.stripe_webhook_secret = st.get("webhook_secret")
        self.stripe_tolerance_s = int(st.get("tolerance_s", 300))

        al = data.get("alipay") or {}
        self.alipay_app_id = al.get("app_id")
        self.alipay_seller_id = al.get("seller_id", "2088000000000001")
        self.alipay_app_public_key = self._public(al.get("app_public_key"))
        self.alipay_platform_private_key = self._private(al.get("platform_private_key"))
        self.alipay_timestamp_tolerance_s = int(al.get("timestamp_tolerance_s", 900))

        wx = data.get("wechatpay") or {}
        self.wechat_mchid = wx.get("mchid")
        self.wechat_appid = wx.get("appid")
        cert_text = self._text(wx.get("merchant_cert") or wx.get("merchant_public_key"))
        self.wechat_merchant_public_key = signing.load_public_key(cert_text) if cert_text else None
        self.wechat_merchant_serial = wx.get("merchant_serial")
        if not self.wechat_merchant_serial and cert_text and "CERTIFICATE" in cert_text:
            self.wechat_merchant_serial = signing.cert_serial_hex(cert_text)
        self.wechat_platform_private_key = self._private(wx.get("platform_private_key"))
        self.wechat_platform_cert_pem = self._text(wx.get("platform_cert"))
        self.wechat_platform_serial = wx.get("platform_serial")
        if not self.wechat_platform_serial and self.wechat_platform_cert_pem:
            self.wechat_platform_serial = signing.cert_serial_hex(self.wechat_platform_cert_pem)
        self.wechat_apiv3_key = wx.get("apiv3_key")
        if self.wechat_apiv3_key is not None and len(self.wechat_apiv3_key.encode()) != 32:
            raise ConfigError("wechatpay.apiv3_key must be 32 bytes")
        self.wechat_timestamp_tolerance_s = int(wx.get("timestamp_tolerance_s", 300))

        self.generic_webhook_secret = (data.get("generic") or {}).get("webhook_secret")
        self.generic_api_key = (data.get("generic") or {}).get("api_key")

        pp = data.get("paypal") or {}
        self.paypal_client_id = pp.get("client_id")
        self.paypal_client_secret = pp.get("client_secret")
        self.paypal_webhook_id = pp.get("webhook_id")
        self.paypal_signing_private_key = self._private(pp.get("signing_private_key"))
        self.paypal_signing_cert_pem = self._text(pp.get("signing_cert"))
        self.paypal_ca_cert_pem = self._text(pp.get("ca_cert"))
        self.paypal_cert_id = None
        if self.paypal_signing_cert_pem:
            self.paypal_cert_id = signing.paypal_cert_id(self.paypal_signing_cert_pem)
        self.paypal_token_ttl_s = int(pp.get("token_ttl_s", 32400))

        ad = data.get("adyen") or {}
        self.adyen_api_key = ad.get("api_key")
        self.adyen_hmac_key = ad.get("hmac_key")
        if self.adyen_hmac_key is not None:
            try:
                bytes.fromhex(self.adyen_hmac_key)
            except ValueError:
                raise ConfigError("adyen.hmac_key must be hexadecimal") from None
        self.adyen_merchant_account = ad.get("merchant_account")

        self.merchants = {}
        for code, m in (data.get("merchants") or {}).items():
            if not isinstance(m, dict) or not m.get("api_secret"):
                raise ConfigError(f"merchants.{code}.api_secret is required")
            self.merchants[code] = {"api_secret": m["api_secret"]}
        self.merchant_tolerance_s = int(data.get("merchant_tolerance_s", 300))
        # every answer to a request the fake receives waits this long (control API excepted)
        self.latency_ms = data.get("latency_ms", 0)
        if not isinstance(self.latency_ms, int) or isinstance(self.latency_ms, bool) \
                or not 0 <= self.latency_ms <= 60000:
            raise ConfigError("latency_ms must be an integer 0..60000")
        self.wrong_private_key = self._private(data.get("wrong_private_key"))

    def _text(self, value):
        """PEM text from a value that is either PEM or a file path."""
        if not value:
            return None
        if "-----BEGIN" in value:
            return value
        path = value if os.path.isabs(value) else os.path.join(self.base_dir, value)
        try:
            with open(path, encoding="ascii") as f:
                return f.read()
        except OSError as e:
            raise ConfigError(f"cannot read key file {path}: {e.strerror}") from None

    def _private(self, value):
        """A private key object, or None."""
        text = self._text(value)
        return signing.load_private_key(text) if text else None

    def _public(self, value):
        """A public key object, or None."""
        text = self._text(value)
        return signing.load_public_key(text) if text else None

    def wrong_key(self):
        """A private key unrelated to every configured one (generated once if not configured)."""
        if self.wrong_private_key is None:
            from cryptography.hazmat.primitives.asymmetric import rsa
            self.wrong_private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return self.wrong_private_key


def load(path=None):
    """Load and check the configuration file (default: config.json next to this module)."""
    path = path or DEFAULT_PATH
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e.strerror}") from None
    except ValueError as e:
        raise ConfigError(f"config {path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a JSON object")
    return Config(data, os.path.dirname(os.path.abspath(path)))
