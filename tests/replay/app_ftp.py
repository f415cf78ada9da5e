"""FTP differential family: control connections crafted line by line, rules as ET Open writes
them (`alert ftp` with content / pcre on the stream) and a few ET rules themselves.

What Suricata 7.0.10 does on them (--simulate-ips), beyond the obvious:
- detection by patterns only: "USER ", "PASS ", "PORT ", "FEAT" from the client, "220 ("
  from the server (vsftpd's banner), any case, at the start, on any port;
- RETR and STOR need a data port negotiated before (PORT/EPRT accepted, a PASV/EPSV
  answer) and a file name, else the parser gives up: the flow is dropped from that packet;
  "port" in lower case is the PORT command but not a data port (the argument parser wants
  "PORT"); a command is found anywhere in the line ("XREPORT" is PORT).
"""
from __future__ import annotations

from app_scenarios import AppFamily

FTP_RULES = r"""
# detection and stream rules (sid 9410xx)
alert ftp any any -> any any (msg:"ftp client marker"; flow:to_server; content:"CLIMARK"; sid:941001;)
alert ftp any any -> any any (msg:"ftp server marker"; flow:to_client; content:"SRVMARK"; sid:941002;)
alert tcp any any -> any any (msg:"tcp client marker"; flow:to_server; content:"CLIMARK"; sid:941003;)
alert ftp any any -> any any (msg:"after a parser error"; flow:to_server; content:"AFTERERR"; sid:941004;)
alert tcp any any -> any any (msg:"tcp after a parser error"; flow:to_server; content:"AFTERERR"; sid:941005;)
alert ftp any any -> any any (msg:"banner at the stream start"; flow:to_client; content:"220"; depth:3; sid:941006;)
# ET Open rules (sid as ET's)
alert ftp $EXTERNAL_NET any -> $HOME_NET any (msg:"GPL FTP LIST directory traversal attempt"; flow:to_server,established; content:"LIST"; nocase; content:".."; distance:1; content:".."; distance:1; classtype:protocol-command-decode; sid:2101992; rev:10;)
alert ftp $EXTERNAL_NET any -> $HOME_NET 21 (msg:"GPL FTP PASS overflow attempt"; flow:to_server,established,no_stream; content:"PASS"; nocase; isdataat:100,relative; pcre:"/^PASS\s[^\n]{100}/smi"; classtype:attempted-admin; sid:2101972; rev:18;)
alert ftp $EXTERNAL_NET any -> $HOME_NET any (msg:"GPL FTP USER overflow attempt"; flow:to_server,established,no_stream; content:"USER|20|"; nocase; isdataat:100,relative; pcre:"/^USER\x20[^\x00\x20\x0a\x0d]{100}/smi"; classtype:attempted-admin; sid:2101734; rev:38;)
alert ftp $HOME_NET any -> $EXTERNAL_NET any (msg:"ET FTP Outbound Java Anonymous FTP Login"; flow:to_server,established; content:"USER anonymous|0d 0a|PASS Java1."; fast_pattern; pcre:"/^\d\.\d(_\d+)?\@\r\n/R"; flowbits:set,ET.Java.FTP.Logon; classtype:misc-activity; sid:2016687; rev:4;)
alert ftp $HOME_NET [0:20,22:24,26:118,120:138,140:444,446:464,466:586,588:901,903:1432,1434:65535] -> any any (msg:"ET HUNTING Suspicious FTP 220 Banner on Local Port (-)"; flow:from_server,established; content:"220-"; depth:4; classtype:non-standard-protocol; sid:2003055; rev:13;)
alert ftp $HOME_NET any -> $EXTERNAL_NET any (msg:"ET INFO .exe File requested over FTP"; flow:established,to_server; dsize:>10; content:"RETR"; depth:4; content:".exe|0d 0a|"; distance:0; pcre:"/^RETR\s+[^\r\n]+?\x2eexe\r?$/m"; classtype:misc-activity; sid:2014906; rev:3;)
alert ftp $EXTERNAL_NET any -> $HOME_NET any (msg:"ET EXPLOIT PCMan FTP Server 2.0.7 Remote Command Execution"; flow:to_server,established; content:"|65 82 a5 7c|"; fast_pattern; content:"|90 90 90 90 90|"; within:10; classtype:attempted-admin; sid:2020585; rev:3;)
"""


def s_ftp(cap) -> None:
    from make_differential import C1, C2, C3, S1, S2, S3, Tcp

    def login(t, user=b"USER anonymous CLIMARK\r\n"):
        t.c(data=user)
        t.s(data=b"331 Please specify the password.\r\n")
        t.c(data=b"PASS secret\r\n")
        t.s(data=b"230 Login successful SRVMARK\r\n")

    # 1: vsftpd's banner: detected from the server's side, on a port that is not 21
    t = Tcp(cap, C1, S1, 45001, 2121).handshake()
    t.s(data=b"220 (vsFTPd 3.0.3)\r\n")
    login(t)
    t.c(data=b"QUIT\r\n")
    t.s(data=b"221 Goodbye.\r\n")
    t.close()
    # 2: another banner (no "("): detected from the client's USER; a multi-line banner first
    t = Tcp(cap, C2, S1, 45002, 21).handshake()
    t.s(data=b"220-Welcome\r\n220 ProFTPD Server ready.\r\n")
    login(t, b"user lowercase CLIMARK\r\n")
    t.close()
    # 3: FEAT, PASS and PORT first are FTP; LIST first is not
    for port, first in ((45003, b"FEAT CLIMARK\r\n"), (45004, b"PASS x CLIMARK\r\n"),
                        (45005, b"PORT 198,51,100,3,4,1 CLIMARK\r\n"), (45006, b"LIST CLIMARK\r\n")):
        t = Tcp(cap, C3, S1, port, 21).handshake()
        t.c(data=first)
        t.s(data=b"200 fine SRVMARK\r\n")
        t.close()
    # 4: RETR with no data port negotiated: the parser gives up, the flow is dropped
    t = Tcp(cap, C1, S2, 45007, 21).handshake()
    t.s(data=b"220 (vsFTPd 3.0.3)\r\n")
    login(t)
    t.c(data=b"RETR file.txt\r\n")
    t.s(data=b"425 Use PORT or PASV first.\r\n")
    t.c(data=b"QUIT AFTERERR\r\n")
    t.close()
    # 5: PASV answered, RETR; EPSV answered, RETR; PORT accepted, STOR; EPRT, RETR: no errors
    t = Tcp(cap, C2, S2, 45008, 21).handshake()
    t.s(data=b"220 (vsFTPd 3.0.3)\r\n")
    login(t)
    t.c(data=b"PASV\r\n")
    t.s(data=b"227 Entering Passive Mode (203,0,113,2,195,80).\r\n")
    t.c(data=b"RETR a.txt\r\n")
    t.s(data=b"150 Opening BINARY mode data connection.\r\n226 Transfer complete.\r\n")
    t.c(data=b"EPSV\r\n")
    t.s(data=b"229 Entering Extended Passive Mode (|||50001|)\r\n")
    t.c(data=b"RETR b.txt\r\n")
    t.s(data=b"150 ok\r\n226 ok\r\n")
    t.c(data=b"PORT 198,51,100,2,4,2\r\n")
    t.s(data=b"200 PORT command successful.\r\n")
    t.c(data=b"STOR c.txt\r\n")
    t.s(data=b"150 ok\r\n226 ok\r\n")
    t.c(data=b"EPRT |1|198.51.100.2|50002|\r\n")
    t.s(data=b"200 EPRT command successful.\r\n")
    t.c(data=b"RETR d.txt CLIMARK\r\n")
    t.s(data=b"150 ok\r\n226 ok SRVMARK\r\n")
    t.close()
    # 6: "port" in lower case is PORT, but no data port: the following RETR is an error
    t = Tcp(cap, C3, S2, 45009, 21).handshake()
    t.s(data=b"220 (vsFTPd 3.0.3)\r\n")
    login(t)
    t.c(data=b"port 198,51,100,3,4,3\r\n")
    t.s(data=b"200 PORT command successful.\r\n")
    t.c(data=b"RETR e.txt\r\n")
    t.c(data=b"NOOP AFTERERR\r\n")
    t.close()
    # 7: a command anywhere in the line: "XREPORT" is PORT (its line is no data port); a short
    # STOR after PASV (no file name) is an error
    t = Tcp(cap, C1, S3, 45010, 21).handshake()
    t.s(data=b"220 (vsFTPd 3.0.3)\r\n")
    login(t)
    t.c(data=b"XREPORT 1,2,3,4,5,6\r\n")
    t.s(data=b"500 Unknown command.\r\n")
    t.c(data=b"PASV\r\n")
    t.s(data=b"227 Entering Passive Mode (203,0,113,3,195,81)\r\n")
    t.c(data=b"STOR\r\n")
    t.c(data=b"NOOP AFTERERR\r\n")
    t.close()
    # 8: a long command line (over 4096 bytes) is cut, the session goes on
    t = Tcp(cap, C2, S3, 45011, 21).handshake()
    t.s(data=b"220 (vsFTPd 3.0.3)\r\n")
    login(t)
    t.c(data=b"SITE " + b"z" * 5000 + b"\r\n")
    t.s(data=b"500 too long\r\n")
    t.c(data=b"NOOP CLIMARK\r\n")
    t.s(data=b"200 NOOP ok SRVMARK\r\n")
    t.close()
    # 9: ET rules: LIST traversal, PASS/USER overflow, PCMan, Java login, 220- banner on a high
    # port, .exe requested (after PASV)
    t = Tcp(cap, S1, C1, 45012, 21).handshake()
    t.s(data=b"220 (vsFTPd 3.0.3)\r\n")
    t.c(data=b"USER " + b"A" * 120 + b"\r\n")
    t.s(data=b"331 ok\r\n")
    t.c(data=b"PASS " + b"B" * 120 + b"\r\n")
    t.s(data=b"230 ok\r\n")
    t.c(data=b"LIST ../../..//\r\n")
    t.s(data=b"550 no\r\n")
    t.c(data=b"CWD \x65\x82\xa5\x7c\x90\x90\x90\x90\x90\x90\r\n")
    t.s(data=b"550 no\r\n")
    t.close()
    t = Tcp(cap, C3, S3, 45013, 5021).handshake()
    t.s(data=b"220-java ftp\r\n220 ready\r\n")
    t.c(data=b"USER anonymous\r\nPASS Java1.8.0_121@\r\n")
    t.s(data=b"331 ok\r\n230 ok\r\n")
    t.c(data=b"PASV\r\n")
    t.s(data=b"227 Entering Passive Mode (203,0,113,3,195,82)\r\n")
    t.c(data=b"RETR setup.exe\r\n")
    t.s(data=b"150 ok\r\n226 ok\r\n")
    t.close()
    t = Tcp(cap, S2, C2, 45014, 2100).handshake()
    t.s(data=b"220-hidden ftp\r\n220 ready\r\n")
    t.c(data=b"USER x\r\n")
    t.s(data=b"331 ok\r\n")
    t.close()


FAMILIES = [
    AppFamily("app_ftp", "FTP detection (USER/PASS/PORT/FEAT from the client, vsftpd's \"220 (\" banner, any "
              "case and port; not LIST), `alert ftp` stream rules both ways, the banner held until the client "
              "decides, parser errors that drop the flow inline (RETR/STOR without a data port, lower-case "
              "port, a short STOR), PASV/EPSV/PORT/EPRT data ports, a command found mid-line, a long line, "
              "ET Open ftp rules", FTP_RULES, s_ftp, ("ips", "ids")),
]
