// Bouncy Castle's EST client (org.bouncycastle.est, Debian libbcpkix-java) against a real
// `enroll serve`: compiled and run by test_interop_bouncycastle.py.
//
// Usage: java BcEst HOST:PORT TLS_CA_PEM USER PASSWORD
// Prints one line per step ("cacerts ...", "csrattrs ...", "simpleenroll SERIAL", ...);
// any failure is an exception and a non-zero exit. The TLS CA is trusted explicitly
// (a PKIX trust manager over a keystore holding only the PEM bundle), never the JVM's
// default store.

import java.io.InputStream;
import java.math.BigInteger;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.Security;
import java.security.Signature;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.ECGenParameterSpec;
import java.util.Arrays;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.TrustManagerFactory;
import javax.net.ssl.X509TrustManager;

import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.cert.X509CertificateHolder;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.est.CACertsResponse;
import org.bouncycastle.est.CSRRequestResponse;
import org.bouncycastle.est.ESTAuth;
import org.bouncycastle.est.ESTException;
import org.bouncycastle.est.ESTService;
import org.bouncycastle.est.EnrollmentResponse;
import org.bouncycastle.est.jcajce.JcaHttpAuthBuilder;
import org.bouncycastle.est.jcajce.JsseESTServiceBuilder;
import org.bouncycastle.jce.provider.BouncyCastleProvider;
import org.bouncycastle.openssl.jcajce.JcaPEMKeyConverter;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;
import org.bouncycastle.pkcs.PKCS10CertificationRequest;
import org.bouncycastle.pkcs.jcajce.JcaPKCS10CertificationRequestBuilder;

public class BcEst {
    static final JcaX509CertificateConverter CONVERT = new JcaX509CertificateConverter();

    public static void main(String[] args) throws Exception {
        // BC's own pieces (the PEM key converter, its CertPath helpers) ask for "BC".
        Security.addProvider(new BouncyCastleProvider());
        String server = args[0];
        X509TrustManager[] trust = trustManagers(args[1]);
        ESTAuth basic = new JcaHttpAuthBuilder(args[2], args[3].toCharArray()).build();
        ESTService est = new JsseESTServiceBuilder(server, trust).withTimeout(15000).build();

        // /cacerts: no authentication
        CACertsResponse ca = est.getCACerts();
        X509CertificateHolder[] chain = ESTService.storeToArray(ca.getCertificateStore());
        StringBuilder subjects = new StringBuilder();
        for (X509CertificateHolder c : chain) {
            subjects.append(" ").append(c.getSubject().toString().replace(' ', '_'));
        }
        System.out.println("cacerts " + chain.length + subjects);

        // /csrattrs: the default profile asks for nothing (204)
        CSRRequestResponse attrs = est.getCSRAttributes();
        System.out.println("csrattrs " + attrs.hasAttributesResponse());

        // /simpleenroll with HTTP Basic
        KeyPair device = ecKey();
        X509Certificate issued = one(est.simpleEnroll(false, csr("CN=bc-device", device), basic));
        check(issued.getPublicKey().equals(device.getPublic()), "simpleenroll: not our key");
        System.out.println("simpleenroll " + hex(issued.getSerialNumber()));

        // /simplereenroll with the issued certificate as the TLS client certificate
        KeyStore ks = KeyStore.getInstance("PKCS12");
        ks.load(null, null);
        char[] pin = "changeit".toCharArray();
        ks.setKeyEntry("device", device.getPrivate(), pin, new Certificate[] {issued});
        KeyManagerFactory kmf = KeyManagerFactory.getInstance("PKIX");
        kmf.init(ks, pin);
        ESTService tlsAuth = new JsseESTServiceBuilder(server, trust)
                .withKeyManagers(kmf.getKeyManagers()).withTimeout(15000).build();
        KeyPair next = ecKey();
        X509Certificate renewed = one(tlsAuth.simpleEnroll(true, csr("CN=bc-device", next), null));
        check(renewed.getPublicKey().equals(next.getPublic()), "reenroll: not our key");
        check(!renewed.getSerialNumber().equals(issued.getSerialNumber()), "reenroll: same cert");
        System.out.println("simplereenroll " + hex(renewed.getSerialNumber()));

        // a reenroll for another subject is refused
        try {
            tlsAuth.simpleEnroll(true, csr("CN=someone-else", ecKey()), null);
            throw new AssertionError("reenroll for another subject was accepted");
        } catch (ESTException e) {
            System.out.println("reenroll-other-subject " + e.getStatusCode());
        }

        // /serverkeygen: the server makes the key; BC reads the multipart answer
        EnrollmentResponse kg = est.simpleEnrollWithServersideCreation(
                csr("CN=bc-keyless", ecKey()), basic);
        X509Certificate kgCert = one(kg);
        check(kg.getPrivateKeyInfo() != null, "serverkeygen: no private key");
        PrivateKey kgKey = new JcaPEMKeyConverter().getPrivateKey(kg.getPrivateKeyInfo());
        check(signs(kgKey, kgCert), "serverkeygen: key does not match the certificate");
        System.out.println("serverkeygen " + hex(kgCert.getSerialNumber()) + " "
                + kgKey.getAlgorithm());

        // a wrong password: 401, nothing issued
        try {
            est.simpleEnroll(false, csr("CN=intruder", ecKey()),
                    new JcaHttpAuthBuilder(args[2], "wrong".toCharArray()).build());
            throw new AssertionError("a wrong password was accepted");
        } catch (ESTException e) {
            System.out.println("wrong-password " + e.getStatusCode());
        }
    }

    static X509TrustManager[] trustManagers(String pem) throws Exception {
        KeyStore anchors = KeyStore.getInstance("PKCS12");
        anchors.load(null, null);
        int n = 0;
        try (InputStream in = Files.newInputStream(Paths.get(pem))) {
            for (Certificate c : CertificateFactory.getInstance("X.509").generateCertificates(in)) {
                anchors.setCertificateEntry("tls-ca-" + n++, c);
            }
        }
        TrustManagerFactory tmf = TrustManagerFactory.getInstance("PKIX");
        tmf.init(anchors);
        return new X509TrustManager[] {(X509TrustManager) tmf.getTrustManagers()[0]};
    }

    static KeyPair ecKey() throws Exception {
        KeyPairGenerator gen = KeyPairGenerator.getInstance("EC");
        gen.initialize(new ECGenParameterSpec("secp256r1"));
        return gen.generateKeyPair();
    }

    static PKCS10CertificationRequest csr(String subject, KeyPair key) throws Exception {
        return new JcaPKCS10CertificationRequestBuilder(new X500Name(subject), key.getPublic())
                .build(new JcaContentSignerBuilder("SHA256withECDSA").build(key.getPrivate()));
    }

    static X509Certificate one(EnrollmentResponse r) throws Exception {
        check(r.isCompleted(), "enrollment not completed (retry-after)");
        X509CertificateHolder[] certs = ESTService.storeToArray(r.getStore());
        check(certs.length == 1, "expected one certificate, got " + Arrays.toString(certs));
        return CONVERT.getCertificate(certs[0]);
    }

    static boolean signs(PrivateKey key, X509Certificate cert) throws Exception {
        byte[] data = "enroll".getBytes("UTF-8");
        String alg = "EC".equals(key.getAlgorithm()) ? "SHA256withECDSA" : "SHA256withRSA";
        Signature s = Signature.getInstance(alg);
        s.initSign(key);
        s.update(data);
        byte[] sig = s.sign();
        Signature v = Signature.getInstance(alg);
        v.initVerify(cert.getPublicKey());
        v.update(data);
        return v.verify(sig);
    }

    static String hex(BigInteger serial) {
        return serial.toString(16);
    }

    static void check(boolean ok, String what) {
        if (!ok) {
            throw new AssertionError(what);
        }
    }
}
