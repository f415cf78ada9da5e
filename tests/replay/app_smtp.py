"""SMTP differential families: sessions crafted line by line and rules as ET Open writes
them (`alert smtp` with content on the stream, file.data on attachments), a few ET
rules themselves (their $SMTP_SERVERS written $HOME_NET: the differential config has no
SMTP_SERVERS).

What Suricata 7.0.10 does on them (--simulate-ips), beyond the obvious:
- detection is by the client's first command only (EHLO/HELO/QUIT, any case, at the
  start); a banner the server sends first is inspected by `alert smtp` rules once the
  client's command made the flow SMTP;
- a server reply without a known code, or shorter than 3 bytes, "BDAT" without a size and
  BDAT data running past its size are parser errors: the flow is dropped from that packet;
- file.data is the attachments (a file name), decoded from base64 / quoted-printable, not
  the body text; an attachment is inspected when it is complete (its boundary, the end
  of the mail), or once it holds 32 KiB, and then each packet's new bytes alone.
In IDS mode (app_smtp, app_smtp_files) the same alerts come on the packets acknowledging
the data.  app_smtp_windows is inline only: in IDS mode Suricata reads the client's
newly parsed file data on the client's next packet (its FLOW_TS_APP_UPDATED), the
replay only on a packet that hands the app layer data, so the windows differ.
app_smtp_tnef is inline only too: in IDS mode Suricata's SMTP parser triggers the raw
stream's inspection when an attachment ends (with a minimal inspect depth), so stream
rules alert on the acknowledgment of the attachment's end; the replay's stream has no
such trigger and inspects at its own flush points.
"""
from __future__ import annotations

import base64
import itertools

from app_scenarios import AppFamily

SMTP_RULES = r"""
# detection and stream rules (sid 9400xx)
alert smtp any any -> any any (msg:"smtp client marker"; flow:to_server; content:"CLIMARK"; sid:940001;)
alert smtp any any -> any any (msg:"smtp banner before detection"; flow:to_client; content:"220-first banner"; sid:940002;)
alert tcp any any -> any any (msg:"tcp client marker"; flow:to_server; content:"CLIMARK"; sid:940003;)
alert smtp any any -> any any (msg:"smtp server marker"; flow:to_client; content:"SRVMARK"; sid:940004;)
alert smtp any any -> any any (msg:"after a parser error"; flow:to_server; content:"AFTERERR"; sid:940005;)
alert tcp any any -> any any (msg:"tcp after a parser error"; flow:to_server; content:"AFTERERR"; sid:940006;)
alert smtp any any -> any any (msg:"mail body marker"; flow:to_server; content:"BODYMARK"; sid:940007;)
alert smtp any any -> any any (msg:"pcre on the stream"; flow:established,to_server; content:"RCPT|20|TO"; pcre:"/^RCPT TO:<[^>]{30,}>/m"; sid:940008;)
# ET Open rules (sid as ET's; $SMTP_SERVERS written $HOME_NET)
alert smtp $EXTERNAL_NET any -> $HOME_NET any (msg:"ET SCAN StarDotStar HELO, suspected AUTH LOGIN botnet"; flow:established,to_server; content:"HELO|20 2a 2e 2a 0d 0a|"; depth:11; classtype:bad-unknown; sid:2026463; rev:3;)
alert smtp $EXTERNAL_NET any -> $HOME_NET any (msg:"ET SMTP Abuseat.org Block Message"; flow:established,from_server; content:"abuseat.org"; classtype:not-suspicious; sid:2012982; rev:4;)
alert smtp any any -> $HOME_NET any (msg:"ET EXPLOIT Possible Exim 4.87-4.91 RCE Attempt Inbound (CVE-2019-10149)"; flow:established,to_server; content:"RCPT|20|TO"; content:"|24 7b|run|7b|"; within:12; fast_pattern; content:"|7d 7d 40|"; distance:0; classtype:attempted-admin; sid:2027442; rev:4;)
alert smtp any any -> $HOME_NET any (msg:"ET EXPLOIT Possible OpenSMTPD RCE Inbound (CVE-2020-7247)"; flow:established,to_server; content:"MAIL|20|FROM|3a|<|3b|"; fast_pattern; classtype:attempted-admin; sid:2031621; rev:1;)
alert smtp $HOME_NET any -> $EXTERNAL_NET any (msg:"ET POLICY Outbound SMTP NTLM Authentication Observed"; flow:established,to_server; content:"AUTH|20|ntlm|20|"; depth:10; nocase; fast_pattern; pcre:"/^(?:[A-Z0-9+/]{4})*(?:[A-Z0-9+/]{2}==|[A-Z0-9+/]{3}=|[A-Z0-9+/]{4})$/Ri"; classtype:policy-violation; sid:2027152; rev:1;)
alert smtp any any -> $HOME_NET any (msg:"ET EXPLOIT Possible EXIM DoS (CVE-2019-16928)"; flow:established,to_server; content:"EHLO "; depth:5; isdataat:5000,relative; content:!"|0a|"; within:500; classtype:attempted-admin; sid:2028636; rev:2;)
alert smtp any any -> $HOME_NET any (msg:"ET EXPLOIT Exim4 UAF Attempt (BDAT with non-printable chars)"; flow:established,to_server; content:"BDAT"; depth:5; pcre:"/^\s*\d*[^\x20-\x7e\r\n\t]/R"; classtype:attempted-admin; sid:2025063; rev:3;)
"""


def _mail(t, body: list[bytes], frm: bytes = b"MAIL FROM:<a@example.com>\r\n") -> None:
    """MAIL FROM, RCPT TO, DATA answered, the body in the given pieces, its reply."""
    t.c(data=frm)
    t.s(data=b"250 ok\r\n")
    t.c(data=b"RCPT TO:<b@example.com>\r\n")
    t.s(data=b"250 ok\r\n")
    t.c(data=b"DATA\r\n")
    t.s(data=b"354 go ahead\r\n")
    for piece in body:
        t.c(data=piece)
        if len(body) > 4:
            t.s(flags="A")                # keep the client within the server's window
    t.s(data=b"250 queued\r\n")


def s_smtp(cap) -> None:
    from make_differential import C1, C2, C3, S1, S2, S3, Tcp

    # 1: the server speaks first (a multi-line banner), EHLO, PIPELINING, a mail, QUIT
    t = Tcp(cap, C1, S1, 43001, 25).handshake()
    t.s(data=b"220-first banner\r\n220 mx.example ESMTP\r\n")
    t.c(data=b"EHLO client.example CLIMARK\r\n")
    t.s(data=b"250-mx.example\r\n250-PIPELINING\r\n250 SIZE 1000\r\n")
    _mail(t, [b"Subject: x\r\n\r\nBODYMARK\r\n.\r\n"])
    t.c(data=b"QUIT\r\n")
    t.s(data=b"221 bye SRVMARK\r\n")
    t.close()
    # 2: helo in lower case, on another port
    t = Tcp(cap, C1, S1, 43002, 2525).handshake()
    t.c(data=b"helo x CLIMARK\r\n")
    t.s(data=b"250 SRVMARK\r\n")
    t.close()
    # 3: the command split: "EH" then "LO ..."
    t = Tcp(cap, C2, S1, 43003, 25).handshake()
    t.c(data=b"EH")
    t.c(data=b"LO x CLIMARK\r\n")
    t.s(data=b"250 SRVMARK\r\n")
    t.close()
    # 4: no greeting command first (MAIL FROM): not SMTP
    t = Tcp(cap, C2, S1, 43004, 25).handshake()
    t.s(data=b"220 mx.example ESMTP\r\n")
    t.c(data=b"MAIL FROM:<CLIMARK@example.com>\r\n")
    t.s(data=b"250 SRVMARK\r\n")
    t.close()
    # 5: a space before EHLO: not SMTP either
    t = Tcp(cap, C3, S1, 43005, 25).handshake()
    t.c(data=b" EHLO x CLIMARK\r\n")
    t.close()
    # 6: a reply code SMTP does not know (530): the parser gives up, the flow is dropped
    t = Tcp(cap, C3, S2, 43006, 25).handshake()
    t.s(data=b"220 mx.example ESMTP\r\n")
    t.c(data=b"EHLO x\r\n")
    t.s(data=b"530 authentication required\r\n")
    t.c(data=b"AUTH LOGIN AFTERERR\r\n")
    t.close()
    # 7: a reply shorter than a code (the segment has 8 bytes: Suricata parses the server's
    # first data after a client-side detection only from 8 bytes on, its pattern depth)
    t = Tcp(cap, C1, S2, 43007, 25).handshake()
    t.c(data=b"EHLO x\r\n")
    t.s(data=b"25\r\n250 \r\n")
    t.c(data=b"MAIL FROM:<AFTERERR@example.com>\r\n")
    t.close()
    # 8: BDAT without a size
    t = Tcp(cap, C2, S2, 43008, 25).handshake()
    t.c(data=b"EHLO x\r\n")
    t.s(data=b"250 ok\r\n")
    t.c(data=b"BDAT\r\n")
    t.c(data=b"AFTERERR\r\n")
    t.close()
    # 9: BDAT with its exact size (no error), then BDAT whose data runs past it
    t = Tcp(cap, C3, S3, 43009, 25).handshake()
    t.c(data=b"EHLO x\r\n")
    t.s(data=b"250 ok\r\n")
    t.c(data=b"MAIL FROM:<a@example.com>\r\n")
    t.s(data=b"250 ok\r\n")
    t.c(data=b"BDAT 9\r\n")
    t.c(data=b"BODYMARK\n")
    t.s(data=b"250 ok\r\n")
    t.c(data=b"BDAT 3 LAST\r\n")
    t.c(data=b"too long\r\n")
    t.c(data=b"AFTERERR\r\n")
    t.close()
    # 10: a long command line (over 4096 bytes) is cut; the session goes on
    t = Tcp(cap, C1, S3, 43010, 25).handshake()
    t.c(data=b"EHLO x\r\n")
    t.s(data=b"250 ok\r\n")
    t.c(data=b"NOOP " + b"a" * 5000 + b"\r\n")
    t.s(data=b"250 ok\r\n")
    t.c(data=b"NOOP CLIMARK\r\n")
    t.s(data=b"250 SRVMARK\r\n")
    t.close()
    # 11: DATA refused (554): the "body" is commands, the session goes on
    t = Tcp(cap, C2, S3, 43011, 25).handshake()
    t.c(data=b"EHLO x\r\n")
    t.s(data=b"250 ok\r\n")
    t.c(data=b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n")
    t.s(data=b"250 ok\r\n250 ok\r\n")
    t.c(data=b"DATA\r\n")
    t.s(data=b"554 no\r\n")
    t.c(data=b"BODYMARK\r\n.\r\n")
    t.s(data=b"500 what\r\n500 what\r\n")
    t.c(data=b"QUIT\r\n")
    t.s(data=b"221 SRVMARK\r\n")
    t.close()
    # 12: ET rules: HELO *.* from outside, abuseat block message, Exim ${run{, OpenSMTPD, NTLM
    t = Tcp(cap, S1, C1, 43012, 25).handshake()
    t.s(data=b"220 mx.example ESMTP\r\n")
    t.c(data=b"HELO *.*\r\n")
    t.s(data=b"250 ok\r\n")
    t.c(data=b"MAIL FROM:<>\r\n")
    t.s(data=b"250 ok\r\n")
    t.c(data=b"RCPT TO:<${run{\\x2fbin\\x2fsh\t-c\t\\x22id\\x22}}@localhost>\r\n")
    t.s(data=b"250 ok\r\n")
    t.close()
    t = Tcp(cap, C2, S2, 43013, 25).handshake()
    t.s(data=b"220 mx.example ESMTP\r\n")
    t.c(data=b"EHLO x\r\n")
    t.s(data=b"250 ok\r\n")
    t.c(data=b"MAIL FROM:<a@example.com>\r\n")
    t.s(data=b"554 5.7.1 Service unavailable; see http://www.abuseat.org/lookup\r\n")
    t.c(data=b"AUTH NTLM TlRMTVNTUAABAAAAB4IIogAAAAA=\r\n")
    t.s(data=b"334 ok\r\n")
    t.close()
    t = Tcp(cap, S2, C3, 43014, 25).handshake()
    t.c(data=b"EHLO x\r\n")
    t.s(data=b"250 ok\r\n")
    t.c(data=b"MAIL FROM:<;sleep 66;>\r\n")
    t.s(data=b"250 ok\r\n")
    t.c(data=b"RCPT TO:<" + b"r" * 40 + b"@example.com>\r\n")
    t.s(data=b"250 ok\r\n")
    t.c(data=b"BDAT \x01\r\n")        # not a number: a size of 0 for Suricata, no error
    t.s(data=b"250 ok\r\n")
    t.c(data=b"RSET\r\n")            # past the size of 0: the parser gives up
    t.c(data=b"AFTERERR\r\n")
    t.close()


SMTP_FILES_RULES = r"""
# file.data on SMTP attachments (sid 9401xx)
alert smtp any any -> any any (msg:"fd marker"; flow:to_server; file.data; content:"FILEMARK"; sid:940101;)
alert smtp any any -> any any (msg:"fd zip start"; file.data; content:"PK|03 04|"; startswith; sid:940102;)
alert smtp any any -> any any (msg:"fd body text is no file"; file.data; content:"TEXTMARK"; sid:940103;)
alert smtp any any -> any any (msg:"fd qp decoded"; file.data; content:"a=b|0d 0a|c"; sid:940104;)
alert smtp any any -> any any (msg:"fd qp soft break"; file.data; content:"joinedline"; sid:940105;)
alert smtp any any -> any any (msg:"fd qp bad escapes dropped"; file.data; content:"line 3db Z|0d 0a|"; endswith; sid:940106;)
alert smtp any any -> any any (msg:"fd b64 with junk"; file.data; content:"junk-free base64"; sid:940107;)
alert smtp any any -> any any (msg:"fd b64 padded inside"; file.data; content:"ABCD"; bsize:4; sid:940108;)
alert smtp any any -> any any (msg:"fd plain exact"; file.data; content:"line1|0d 0a|line2"; bsize:12; sid:940109;)
alert smtp any any -> any any (msg:"fd encapsulated"; file.data; content:"INNERMARK"; sid:940110;)
alert smtp any any -> any any (msg:"fd rfc2231 name"; file.data; content:"SECTIONMARK"; sid:940111;)
alert smtp any any -> any any (msg:"fd content-type name only"; file.data; content:"NAMEONLYMARK"; sid:940112;)
alert smtp any any -> any any (msg:"fd inline text part"; file.data; content:"INLINEMARK"; sid:940113;)
alert smtp any any -> any any (msg:"fd after a mime error"; file.data; content:"AFTERMIMEERR"; sid:940117;)
alert smtp any any -> any any (msg:"fd at the flow end"; file.data; content:"EOFMARK"; sid:940118;)
alert smtp any any -> any any (msg:"fd pipelined"; file.data; content:"PIPEMARK"; sid:940119;)
alert smtp any any -> any any (msg:"fd continued header"; file.data; content:"FOLDMARK"; sid:940120;)
alert smtp any any -> any any (msg:"fd lone LF lines"; file.data; content:"lf1|0a|lf2"; sid:940121;)
alert smtp any any -> any any (msg:"fd attachment split in segments"; file.data; content:"SEGMENTED MARK"; sid:940122;)
# ET Open rules (sid as ET's; $SMTP_SERVERS written $HOME_NET)
alert smtp any any -> $HOME_NET any (msg:"ET EXPLOIT Possible Zimbra Arbitrary File Upload (CVE-2022-41352) M1"; flow:established,to_server; file.data; content:"2"; depth:330; content:"/jetty"; within:100; content:"/webapps/zimbra/public"; within:50; fast_pattern; content:"ustar"; within:70; classtype:attempted-admin; sid:2039141; rev:1;)
alert smtp any any -> $HOME_NET any (msg:"ET EXPLOIT Possible Zimbra Arbitrary File Upload (CVE-2022-41352) M4"; flow:established,to_server; file.data; content:"070707"; startswith; content:"/jetty"; within:100; content:"/webapps/zimbra/public"; within:50; fast_pattern; classtype:attempted-admin; sid:2039143; rev:1;)
alert smtp $EXTERNAL_NET any -> $HOME_NET any (msg:"ET EXPLOIT Ghostscript illegal read undefinedfilename attempt (SMTP)"; flow:to_server,established; file_data; content:"undefinedfilename"; fast_pattern; content:"errordict"; content:"invalidfileaccess"; content:"typecheck"; pcre:"/errordict\s+\x2Finvalidfileaccess/smi"; classtype:attempted-user; sid:2026086; rev:2;)
alert smtp any any -> $HOME_NET any (msg:"ET EXPLOIT Possible Barracuda Email Security Gateway Remote Code Execution Attempt (CVE-2023-2868) M1"; flow:established,to_server; file.data; content:"|75 73 74 61 72|"; fast_pattern; content:"|27 60|"; distance:0; content:"|60 27|"; within:500; classtype:attempted-admin; sid:2046280; rev:1;)
"""

MIXED = b'Content-Type: multipart/mixed; boundary="BND"\r\n'


def _part(headers: bytes, body: bytes, boundary: bytes = b"BND") -> bytes:
    return b"--" + boundary + b"\r\n" + headers + b"\r\n" + body


def _b64(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def _session(cap, cli, srv, sport, mails, banner=True, quit_=True, close=True, dport=25):
    from make_differential import Tcp

    t = Tcp(cap, cli, srv, sport, dport).handshake()
    if banner:
        t.s(data=b"220 mx.example ESMTP\r\n")
    t.c(data=b"EHLO client.example\r\n")
    t.s(data=b"250 mx.example\r\n")
    for body in mails:
        _mail(t, body)
    if quit_:
        t.c(data=b"QUIT\r\n")
        t.s(data=b"221 bye\r\n")
    if close:
        t.close()
    return t


def s_smtp_files(cap) -> None:
    from make_differential import C1, C2, C3, S1, S2, S3

    att = b'Content-Type: application/octet-stream; name="a.bin"\r\nContent-Transfer-Encoding: base64\r\n'
    # 1: text body, a base64 zip, a QP attachment, plain attachment with an exact size
    zipdata = b"PK\x03\x04" + b"\x00" * 20 + b"FILEMARK inside a zip"
    qp = (b"x a=3Db\r\nc joined=\r\nline =3db =Z\r\n")
    mail = (b"Subject: files\r\nMIME-Version: 1.0\r\n" + MIXED + b"\r\npreamble\r\n"
            + _part(b"Content-Type: text/plain\r\n", b"TEXTMARK in the body\r\n")
            + _part(b'Content-Type: application/zip; name="a.zip"\r\nContent-Transfer-Encoding: base64\r\n',
                    _b64(zipdata))
            + _part(b"Content-Disposition: attachment; filename=q.txt\r\n"
                    b"Content-Transfer-Encoding: quoted-printable\r\n", qp)
            + _part(b"Content-Disposition: attachment; filename=p.txt\r\n", b"line1\r\nline2\r\n")
            + b"--BND--\r\n.\r\n")
    _session(cap, C1, S1, 44001, [[mail]])
    # 2: base64 with characters outside the alphabet, odd line lengths, '=' inside
    b64 = base64.b64encode(b"junk-free base64 text")
    junky = b"  ".join(b64[i:i + 5] for i in range(0, len(b64), 5))
    odd = base64.b64encode(b"A") + base64.b64encode(b"BCD")      # "QQ==QkNE": 'A' then 'BCD'
    mail = (MIXED + b"\r\n" + _part(att, junky[:7] + b"\r\n" + junky[7:] + b"\r\n")
            + _part(att, odd[:3] + b"\r\n" + odd[3:] + b"\r\n") + b"--BND--\r\n.\r\n")
    _session(cap, C2, S1, 44002, [[mail]])
    # 3: an encapsulated message with an attachment; RFC 2231 name sections; a Content-Type
    # name without disposition; an inline text part; a folded header line
    inner = (b"Subject: inner\r\n" + b'Content-Type: multipart/mixed; boundary="IN"\r\n\r\n'
             + _part(b"Content-Disposition: attachment; filename=in.txt\r\n", b"INNERMARK\r\n", b"IN")
             + b"--IN--\r\n")
    mail = (MIXED + b"\r\n" + _part(b"Content-Type: message/rfc822\r\n", inner)
            + _part(b"Content-Disposition: attachment; filename*0=sec; filename*1=tion.txt\r\n",
                    b"SECTIONMARK\r\n")
            + _part(b"Content-Type: application/pdf; name=x.pdf\r\n", b"NAMEONLYMARK\r\n")
            + _part(b"Content-Type: text/plain\r\nContent-Disposition: inline\r\n", b"INLINEMARK\r\n")
            + _part(b"Content-Type: application/x-thing;\r\n\tname=\"folded.bin\"\r\n", b"FOLDMARK\r\n")
            + b"--BND--\r\n.\r\n")
    _session(cap, C3, S1, 44003, [[mail]])
    # 5: a plain attachment whose line end starts the next segment: Suricata appends 0 bytes
    # to the file, an error that stops the MIME decoder for the rest of the mail
    p1 = MIXED + b"\r\n" + _part(b"Content-Disposition: attachment; filename=e.txt\r\n", b"seg one")
    p2 = (b"\r\nseg two\r\n" + _part(b"Content-Disposition: attachment; filename=f.txt\r\n", b"AFTERMIMEERR\r\n")
          + b"--BND--\r\n.\r\n")
    _session(cap, C2, S2, 44005, [[p1, p2]])
    # 6: an attachment split in segments anywhere (mid-line, mid-CRLF)
    body = b"SEGMENTED MARK " * 30
    p = MIXED + b"\r\n" + _part(b"Content-Disposition: attachment; filename=s.txt\r\n", body + b"\r\n") \
        + b"--BND--\r\n.\r\n"
    _session(cap, C3, S2, 44006, [[p[:100], p[100:101], p[101:250], p[250:]]])
    # 7: two mails in one session, each with the marker: one alert per mail
    one = MIXED + b"\r\n" + _part(b"Content-Disposition: attachment; filename=m.txt\r\n", b"FILEMARK\r\n") \
        + b"--BND--\r\n.\r\n"
    _session(cap, C1, S3, 44007, [[one], [one]])
    # 8: the capture ends inside an attachment (no FIN): inspected at the flow's end.  (A
    # session closed with FIN there: Suricata inspects it at the flow's end too, ipsbridge on
    # the packet closing the session, where the app layer learns its end; not tested here)
    p = MIXED + b"\r\n" + _part(b"Content-Disposition: attachment; filename=eof.txt\r\n", b"EOFMARK\r\nmore\r\n")
    t = _session(cap, C2, S3, 44008, [], quit_=False, close=False)
    t.c(data=b"MAIL FROM:<a@example.com>\r\n")
    t.s(data=b"250 ok\r\n")
    t.c(data=b"RCPT TO:<b@example.com>\r\n")
    t.s(data=b"250 ok\r\n")
    t.c(data=b"DATA\r\n")
    t.s(data=b"354 go ahead\r\n")
    t.c(data=p)
    # 9: pipelining (the server announced it): MAIL, RCPT, DATA and the mail in one segment
    from make_differential import Tcp

    t = Tcp(cap, C3, S3, 44009, 25).handshake()
    t.s(data=b"220 mx.example ESMTP\r\n")
    t.c(data=b"EHLO x\r\n")
    t.s(data=b"250-mx.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
    t.c(data=b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n" + MIXED + b"\r\n"
        + _part(b"Content-Disposition: attachment; filename=pipe.txt\r\n", b"PIPEMARK\r\n") + b"--BND--\r\n.\r\n")
    t.s(data=b"250 ok\r\n250 ok\r\n354 go\r\n250 queued\r\n")
    t.close()
    # 10: lines ended by LF alone
    p = (MIXED.replace(b"\r\n", b"\n") + b"\n--BND\nContent-Disposition: attachment; filename=lf.txt\n\n"
         b"lf1\nlf2\n--BND--\n.\r\n")
    _session(cap, C1, S1, 44010, [[p]])
    # 11: ET's Zimbra (tar and cpio attachments), Ghostscript and Barracuda rules
    tar = bytearray(512)
    name = b"2/jetty/webapps/zimbra/public/x.jsp"
    tar[180:180 + len(name)] = name
    tar[257:262] = b"ustar"
    cpio = b"070707" + b"0" * 70 + b"/opt/zimbra/jetty/webapps/zimbra/public/y.jsp\x00"
    ps = b"%!PS\n/x (undefinedfilename) def errordict /invalidfileaccess get typecheck\n"
    barracuda = bytearray(512)
    barracuda[0:5] = b"a.tar"
    barracuda[257:262] = b"ustar"
    bt = b"'`id > /tmp/x`'"
    barracuda[300:300 + len(bt)] = bt
    tarhead = b'Content-Type: application/x-tar; name="t.tar"\r\nContent-Transfer-Encoding: base64\r\n'
    mail = (MIXED + b"\r\n" + _part(tarhead, _b64(bytes(tar)))
            + _part(b'Content-Type: application/octet-stream; name="c.cpio"\r\nContent-Transfer-Encoding: base64\r\n',
                    _b64(cpio))
            + _part(b"Content-Disposition: attachment; filename=g.ps\r\n", ps)
            + b"--BND--\r\n.\r\n")
    _session(cap, S1, C1, 44011, [[mail]])
    mail = MIXED + b"\r\n" + _part(tarhead, _b64(bytes(barracuda))) + b"--BND--\r\n.\r\n"
    _session(cap, S2, C2, 44012, [[mail]])


WINDOWS_RULES = r"""
# file.data windows of an attachment over 32 KiB (sid 9401xx)
alert smtp any any -> any any (msg:"fd first window"; file.data; content:"EARLYMARK"; sid:940114;)
alert smtp any any -> any any (msg:"fd across windows"; file.data; content:"SPLITWINDOWMARK"; sid:940115;)
alert smtp any any -> any any (msg:"fd later window"; file.data; content:"LATEMARK"; sid:940116;)
"""


def s_smtp_windows(cap) -> None:
    from make_differential import C1, S2

    att = b'Content-Type: application/octet-stream; name="a.bin"\r\nContent-Transfer-Encoding: base64\r\n'
    # a large attachment (over 32 KiB), sent in 4000-byte segments: inspected once it holds
    # 32 KiB, then each segment's new bytes alone
    data = bytearray(b"x" * 60000)
    data[1000:1009] = b"EARLYMARK"
    data[52000:52008] = b"LATEMARK"
    enc = _b64(bytes(data))
    mail = MIXED + b"\r\n" + _part(att, enc) + b"--BND--\r\n.\r\n"
    # the segment ending where the decoded size passes 32 KiB + 1 line, split inside a marker
    lines = enc.split(b"\r\n")
    head = len(mail) - len(enc) - len(b"--BND--\r\n.\r\n")
    cut = head + sum(len(x) + 2 for x in lines[:620])     # 620 lines of 57 bytes: 35340 bytes
    mark_at = 620 * 57 + 40                                # decoded offset in the next line
    data[mark_at:mark_at + 15] = b"SPLITWINDOWMARK"
    enc = _b64(bytes(data))
    mail = MIXED + b"\r\n" + _part(att, enc) + b"--BND--\r\n.\r\n"
    split_at = cut + 40 // 3 * 4 + 8                       # inside the marker's base64
    marks = sorted(set(list(range(0, len(mail), 4000)) + [cut, split_at, len(mail)]))
    pieces = [mail[a:b] for a, b in itertools.pairwise(marks)]
    _session(cap, C1, S2, 44004, [pieces])


TNEF_RULES = r"""
# ET Open's base64_decode rules on an SMTP stream (sid as ET's; $SMTP_SERVERS written $HOME_NET)
alert smtp any any -> $HOME_NET any (msg:"ET EXPLOIT Possible Microsoft Outlook Elevation of Privilege Payload Observed M1 (CVE-2023-23397)"; content:"AElQTS5UYXNr"; fast_pattern; content:"|0d 0a 0d 0a|"; base64_decode:offset 0,relative; base64_data; content:"|78 9f 3e 22|"; startswith; content:"I|00|P|00|M|00|.|00|T|00|a|00|s|00|k"; content:"|5c|"; pcre:"/^\x00?\\\x00?[\w\.\-\x00]+\\/R"; classtype:attempted-admin; sid:2044680; rev:3;)
"""


def s_smtp_tnef(cap) -> None:
    from make_differential import C1, S1

    # a TNEF attachment naming a UNC reminder sound: "\x00IPM.Task" base64-encoded in the
    # stream, then the attachment's base64 after the blank line
    tnef = (b"\x78\x9f\x3e\x22" + b"\x00\x00" + b"\x00IPM.Task" + "IPM.Task".encode("utf-16-le")
            + b"\\\x00\\\x00a\x00b\x00c\x00\\\x00")
    body = (b"Content-Type: application/ms-tnef; name=winmail.dat\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + base64.b64encode(tnef) + b"\r\n.\r\n")
    _session(cap, S1, C1, 43101, [[body]])


FAMILIES = [
    AppFamily("app_smtp", "SMTP detection (the client's EHLO/HELO/QUIT only, a banner first held, split "
              "commands, not on MAIL FROM or a leading space, any port), `alert smtp` stream rules in both "
              "directions, parser errors that drop the flow inline (unknown reply code, short reply, BDAT "
              "with nothing after it or running past its size), a long line, DATA refused, ET Open smtp rules",
              SMTP_RULES, s_smtp, ("ips", "ids")),
    AppFamily("app_smtp_files", "SMTP file.data: attachments decoded (base64 with junk and inner padding, "
              "quoted-printable soft breaks and bad escapes, as they are), the body text not a file, "
              "encapsulated messages, RFC 2231 names, Content-Type names, folded headers, LF line ends, "
              "a 0-byte append stopping the decoder, segments split anywhere, one alert per mail, the "
              "flow's end, pipelining, ET Open file.data rules (Zimbra, Ghostscript, Barracuda)",
              SMTP_FILES_RULES, s_smtp_files, ("ips", "ids")),
    AppFamily("app_smtp_windows", "SMTP file.data on an attachment over 32 KiB: inspected once it holds "
              "32 KiB, then each packet's new bytes alone (a marker across two windows is not found); "
              "inline only (in IDS mode Suricata reads the client's file data on the client's next "
              "packet, the replay only on a packet that feeds the app layer)",
              WINDOWS_RULES, s_smtp_windows),
    AppFamily("app_smtp_tnef", "ET Open's base64_decode rule for CVE-2023-23397 on a TNEF attachment in an "
              "SMTP stream; inline only (in IDS mode Suricata's SMTP parser has the raw stream inspected "
              "when an attachment ends, the replay's stream does not know that trigger)",
              TNEF_RULES, s_smtp_tnef),
]
