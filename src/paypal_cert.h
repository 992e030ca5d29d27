/*
 * paypal_cert.h — the certificate a PayPal webhook names in PAYPAL-CERT-URL
 * (paypal_cert.c).
 */
#ifndef PAY_PAYPAL_CERT_H
#define PAY_PAYPAL_CERT_H

extern void PaypalCertInit(void);

/*
 * The verified signing certificate (PEM) at url: from pay.paypal_certs,
 * else fetched, verified and kept there.  PY010 when the URL may not be
 * fetched or the certificate is not PayPal's; 08006 when the fetch fails
 * (the webhook is then answered 500, and PayPal sends it again).  SPI
 * connected.
 */
extern char *PaypalCertificate(const char *url);

#endif
