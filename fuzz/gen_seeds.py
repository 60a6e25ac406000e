import os, base64, random, json, hashlib, struct
random.seed(8)
root = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'corpus')
def put(t, name, data):
    d = os.path.join(root, t); os.makedirs(d, exist_ok=True)
    if isinstance(data, str): data = data.encode()
    open(os.path.join(d, name), 'wb').write(data)

# --- target
paths = [
 "/", "/2.0/files/123", "/2.0/files/123/content", "/2.0/files/content", "/2.0/files/123/versions/456",
 "/2.0/folders/0", "/2.0/folders/0/items\nlimit=100&offset=0&fields=name,size", "/2.0/users/me",
 "/2.0/files/123\nfields=name,sha1", "/2.0/search\nquery=report%202024&type=file", "/2.0/shared_items",
 "/2.0/collaborations/987", "/2.0/files/123/thumbnail.png\nmin_height=256", "/2.0/folders/45/collaborations",
 "/2.0/fil%65s/1%32%33", "/a/b%20c", "/a/%c3%a9", "/2.0/files/1%2F2", "/2.0/files/1%2f2", "/2.0/files/1%5C2",
 "/2.0/files/%2e%2e", "/2.0/files/%252e", "/2.0/files/../folders/1", "/2.0/./files/1", "/2.0//files/1",
 "/2.0/files/1/", "/2.0/files/1;x=2", "/2.0/files\\1", "/2.0/files/1%00", "/2.0/files/1%c0%af",
 "/2.0/files/1%e0%80%ae", "/2.0/files/%zz", "/2.0/files/1%2", "2.0/files/1", "/2.0/files/1\na=b#frag",
 "/2.0/files/%E2%82%AC%F0%9F%98%80", "/2.0/files/a%7Eb%2Dc", "/2.0/files/%3F", "/2.0/files/%23x",
 "/2.0/files/..%2f..%2fadmin", "/2.0/files/%2E", "/2.0/files/1?x=1", "/2.0/files/1#x",
 "http://evil.example/2.0/files/1", "https://api.box.com/2.0/folders/0?x=1", "*", "//evil/2.0/files/1",
 "/2.0/files/1\n", "/2.0/folders/0/items\nfields=name&marker=abc%3D%3D&usemarker=true",
]
for i,p in enumerate(paths): put('target', 'seed-%02d' % i, p)

# --- event
H = lambda s: hashlib.sha256(s).hexdigest()[:32]
evs = [
 {"v":1,"kind":"token","token_hash":H(b"tok"),"revoked_at_ms":1700000000123,"keep_until":1700003600,"source":"api"},
 {"v":1,"kind":"family","family":H(b"parent"),"revoked_at_ms":1700000000123,"keep_until":1700003600,"source":"admin"},
 {"v":1,"kind":"subject","subject":"user-42 \"\u00e9\"","revoked_at_ms":1700000000123,"keep_until":1700003600,"source":"external"},
 {"v":1,"kind":"cutoff","issued_before":1700000000,"revoked_at_ms":1700000000123,"keep_until":1700003600,"source":"admin"},
 {"v":1,"kind":"family","family":H(b"x").upper(),"revoked_at_ms":1,"keep_until":2,"source":"external","reason":"incident 7"},
 {"v":1,"kind":"subject","subject":"1001","revoked_at_ms":0,"keep_until":18446744073709551615,"source":"api"},
]
for i,e in enumerate(evs): put('event', 'valid-%d' % i, json.dumps(e, separators=(',',':'), ensure_ascii=(i%2==0)))
tail = '"revoked_at_ms":1,"keep_until":2,"source":"api"'
HEX = "00112233445566778899aabbccddeeff"
bad = ['{"v":1,"kind":"token","token_hash":"zz",%s}' % tail,
 '{"v":1,"kind":"token","token_hash":"%s","family":"%s",%s}' % (HEX,HEX,tail),
 '{"v":1,"v":1,"kind":"token","token_hash":"%s",%s}' % (HEX,tail),
 '{"v":2,"kind":"token","token_hash":"%s",%s}' % (HEX,tail),
 '{"v":1,"kind":"subject","subject":"a\\u0007b",%s}' % tail,
 '{"v":1,"kind":"cutoff","issued_before":1.5,%s}' % tail, '', 'null', '[]', '{']
for i,b in enumerate(bad): put('event', 'bad-%d' % i, b)

# --- token: even first byte = token to open; odd = claims data
for i in range(8):
    body = bytes(random.getrandbits(8) for _ in range(12 + random.choice([150, 220, 400]) + 16))
    put('token', 'open-%d' % i, b'\x00' + ('sg1.%s.' % random.choice(['f','k1','k2'])).encode() + base64.urlsafe_b64encode(body).rstrip(b'='))
for i,t in enumerate(['', 'sg1.', 'sg1.f', 'sg1.f.', 'sg1.f.!!!!', 'sg1.f.AAAA', 'sg1.zz.AAAA', 'Bearer abc', 'sg1.f.' + 'A'*40]):
    put('token', 'garbage-%d' % i, b'\x02' + t.encode())
for i in range(8):
    parts = [b'\x01', ('parent-token-%d-%s' % (i, 'x'*random.randint(1,60))).encode()]
    raw = b''.join(parts) + bytes(random.getrandbits(8) for _ in range(random.randint(40, 200)))
    put('token', 'claims-%d' % i, raw)

# --- oauth_form
TE = 'urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange'
AT = 'urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token'
forms = [
 f'grant_type={TE}&subject_token=T9cE5asGnuyYCCqIZFoWjFHvNbvVqHjl&subject_token_type={AT}&scope=item_preview&resource=https%3A%2F%2Fapi.box.com%2F2.0%2Ffiles%2F123456',
 f'grant_type={TE}&subject_token=abc&subject_token_type={AT}&scope=item_upload+item_preview+base_explorer&resource=https://api.box.com/2.0/folders/0',
 f'grant_type={TE}&subject_token=abc&subject_token_type={AT}&scope=root_readwrite',
 f'grant_type={TE}&subject_token=abc&subject_token_type={AT}&scope=item_read&resource=https%3A%2F%2Fapi.box.com%2F2.0%2Ffiles%2F%2e%2e',
 'grant_type=refresh_token&refresh_token=xyz&client_id=cid&client_secret=secret',
 'token=sg1.f.AAAA&client_id=cid&client_secret=secret', 'token=abc&token=def', 'scope=a&scope=b', 'scope=a+b',
 'resource=http://x/2.0/folders/0?x=1&scope=', '%ZZ=%FF&=&&a', 'resource=https://api.box.com/2.0/files/1/content',
]
for i,f in enumerate(forms): put('oauth_form', 'form-%02d' % i, b'\x00' + f.encode())
jsons = ['{"name":"a.txt","parent":{"id":"111"}}', '{"parent":{"id":"1"},"parent":{"id":"2"}}',
 '{"item":{"type":"file","id":34},"accessible_by":{"type":"user","login":"a@b.c"},"role":"editor"}',
 '[{"x":1},{"x":2}]', '{"a":[1,2.5,-3,1e400,true,false,null,"\\u00e9\\ud83d\\ude00"]}', '{"name":"x","name":"y"}',
 '{"parent":{"id":"12","id":"13"}}', '"str"', '1.7976931348623157e308', '{"a":{"b":{"c":{"d":{}}}}}']
for i,j in enumerate(jsons): put('oauth_form', 'json-%02d' % i, b'\x01' + j.encode())
cts = ['multipart/form-data; boundary=XyZ', 'multipart/form-data; boundary="a b"', 'multipart/form-data; boundary=a; boundary=b',
 'application/json', 'MULTIPART/FORM-DATA;boundary=------------------------d74496d66958873e', 'multipart/form-data; charset=utf-8; boundary=""']
for i,c in enumerate(cts): put('oauth_form', 'ct-%d' % i, b'\x02' + c.encode())
def part(b, name, content, filename=None):
    fn = f'; filename="{filename}"' if filename else ''
    return f'--{b}\r\nContent-Disposition: form-data; name="{name}"{fn}\r\n\r\n{content}\r\n'
def mp(b, parts):
    return (''.join(part(b, *p) for p in parts) + f'--{b}--\r\n').encode()
A = '{"name":"a.txt","parent":{"id":"111"}}'
E = '{"name":"a.txt","parent":{"id":"222"}}'
bodies = [
 ('XyZ', mp('XyZ', [('attributes', A), ('file', 'hello', 'a.txt')])),
 ('XyZ', mp('XyZ', [('attributes', A), ('attributes', E), ('file', 'x', 'a.txt')])),
 ('XyZ', mp('XyZ', [('attributes', A), ('file', 'x', 'a.txt'), ('attributes', E), ('file', 'y', 'b.txt')])),
 ('XyZ', mp('XyZ', [('file', 'hi', 'a.txt')])),
 ('XyZ', mp('XyZ', [('attributes', A)])),
 ('XyZ', mp('XyZ', [('attributes', A), ('file', 'a\n--XyY\r\n--Xy\n-', 'a.txt')])),
 ('XyZ', mp('XyZ', [('attributes', A), ('file', 'x', 'a.txt')]) + b'\n--XyZ\r\n'),
 ('XyZ', mp('XyZ', [('attributes', '{"parent":{"id":"1"},"parent":{"id":"2"}}'), ('file', 'x')])),
 ('------------------------d74496d66958873e', mp('------------------------d74496d66958873e', [('attributes', A), ('file', 'PK\x03\x04binary', 'a.zip')])),
]
for i,(b,body) in enumerate(bodies):
    ct = f'multipart/form-data; boundary={b}\n'.encode()
    n = i % 3
    splits = b''.join(struct.pack('<H', random.randint(0, len(body))) for _ in range(n))
    put('oauth_form', 'upload-%d' % i, b'\x03' + ct + bytes([n]) + splits + body)

# --- set (first byte: 0 compact JWS, 1 SET claims, 2 transmitter JSON)
b64u = lambda b: base64.urlsafe_b64encode(b).rstrip(b'=').decode()
CAEP = "https://schemas.openid.net/secevent/caep/event-type/"
RISC = "https://schemas.openid.net/secevent/risc/event-type/"
SSFE = "https://schemas.openid.net/secevent/ssf/event-type/"
claims = [
 {"jti":"j1","iss":"https://idp.example.com","aud":"https://gw","iat":1700000000,
  "sub_id":{"format":"email","email":"Alice@Example.com"},"events":{CAEP+"session-revoked":{"event_timestamp":1700000000}}},
 {"jti":"j2","iss":"https://idp.example.com","aud":["https://gw","x"],"iat":1700000000,
  "sub_id":{"format":"iss_sub","iss":"https://idp.example.com","sub":"1001"},"events":{RISC+"account-disabled":{}}},
 {"jti":"j3","iss":"i","aud":"a","iat":1,"events":{RISC+"credential-compromise":{"subject":{"format":"aliases","identifiers":[{"format":"account","uri":"acct:b@x"},{"format":"opaque","id":"7"}]}}}},
 {"jti":"j4","iss":"i","aud":"a","iat":1,"sub_id":{"user":{"format":"email","email":"u@x"},"device":{"format":"opaque","id":"d"}},"events":{CAEP+"credential-change":{"change_type":"revoke"}}},
 {"jti":"j5","iss":"i","aud":"a","iat":1,"events":{SSFE+"verification":{"state":"abc"}}},
 {"jti":"j6","iss":"i","aud":"a","iat":1,"events":{SSFE+"stream-updated":{"status":"paused"}}},
 {"jti":"j7","iss":"i","aud":"a","iat":1,"exp":2,"sub_id":{"format":"phone_number","phone_number":"+1"},"events":{CAEP+"token-claims-change":{}}},
]
for i,c in enumerate(claims): put('set', 'claims-%d' % i, b'\x01' + json.dumps(c).encode())
heads = [{"alg":"RS256","kid":"k1","typ":"secevent+jwt"},{"alg":"ES256","kid":"k2"},{"alg":"none"},
 {"alg":"HS256","kid":"k"},{"alg":"ES256","kid":"k","typ":"JWT"},{"alg":"ES256","kid":"k","crit":["b64"]}]
for i,h in enumerate(heads):
    put('set', 'jws-%d' % i, b'\x00' + ("%s.%s.%s" % (b64u(json.dumps(h).encode()), b64u(json.dumps(claims[0]).encode()), "c2ln" if i%2==0 else "")).encode())
put('set', 'jws-jwe', b'\x00a.b.c.d.e')
docs = [{"sets":{"j1":"a.b.c"},"moreAvailable":True},
 {"issuer":"https://idp.example.com","jwks_uri":"https://idp.example.com/jwks","status_endpoint":"https://idp.example.com/status"},
 {"keys":[{"kty":"EC","crv":"P-256","kid":"ec1","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
          {"kty":"RSA","kid":"r1","alg":"RS256","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"},
          {"kty":"oct","kid":"h","k":"c2VjcmV0"}]}]
for i,d in enumerate(docs): put('set', 'doc-%d' % i, b'\x02' + json.dumps(d).encode())
# --- h1_head, h1_chunked, h1_exchange: upstream answers (the lean HTTP/1.1 exchange)
answers = [
 b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
 b"HTTP/1.1 200 OK\r\ncontent-length: 2, 2\r\n\r\nok",
 b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nok!",
 b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=1\r\n world\r\n0\r\nx-t: 1\r\n\r\n",
 b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
 b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 2\r\n\r\n2\r\nok\r\n0\r\n\r\n",
 b"HTTP/1.1 204 No Content\r\ncontent-length: 6\r\n\r\nforged",
 b"HTTP/1.1 304 Not Modified\r\netag: \"x\"\r\n\r\n",
 b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
 b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n",
 b"HTTP/1.0 200 OK\r\n\r\nuntil close",
 b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok",
 b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nforged",
 b"HTTP/1.1 200 OK\r\ncontent-length: +2\r\n\r\nok",
 b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
 b"HTTP/1.1 200 OK\r\nx-a:  b \t\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"id\":\"1\"}\n",
]
for i,a in enumerate(answers):
    put('h1_head', 'seed-%02d' % i, bytes([i % 4, (i * 37) % 256]) + a)
    put('h1_exchange', 'seed-%02d' % i, bytes([i % 8, (i * 29) % 256]) + a)
chunked = [
 b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n",
 b"0\r\n\r\nHTTP/1.1 200 OK",
 b"a\r\nhello",
 b"5\r\nhelloX\r\n",
 b"5 \t;x=\"y\"\r\nhello\r\n0\r\n\r\n",
 b"5\nhello\r\n0\r\n\r\n",
 b"fffffffffffffff\r\n",
 b"1\r\na\r\n1\r\nb\r\n1\r\nc\r\n0\r\na: b\r\nc: d\r\n\r\n",
]
for i,c in enumerate(chunked):
    n = i % 5
    put('h1_chunked', 'seed-%02d' % i, bytes([n]) + bytes((j * 53 + i) % 256 for j in range(n)) + c)
# --- multipart: the strict envelope against multer. Box clients' bodies and
# the hostile spellings of tests/multipart.rs, as `content-type\n` + count
# byte + 2-byte split points + body.
def mpart(b, heads_contents, close='\r\n'):
    s = ''.join(f'--{b}\r\n{h}\r\n\r\n{c}\r\n' for h, c in heads_contents)
    return (s + f'--{b}--{close}').encode()
AT = 'Content-Disposition: form-data; name="attributes"'
FI = 'Content-Disposition: form-data; name="file"; filename="f.txt"'
mbodies = [
 ('XyZ', mpart('XyZ', [(AT, A), (FI, 'hello')])),
 ('XyZ', mpart('XyZ', [(AT, A), (FI, 'hello')], close='')),
 ('--------------------------012345678901234567890123', mpart('--------------------------012345678901234567890123', [(AT, A), ('Content-Disposition: form-data; name="content"; filename="unused"\r\nContent-Type: application/octet-stream', 'x')])),
 ('0123456789abcdef', mpart('0123456789abcdef', [(AT + '\r\nContent-Type: application/json', A), (FI + '\r\nContent-Type: text/plain', 'a\r\n--0123\n-')])),
 ('"a:b"', mpart('a:b', [(AT, A), (FI, 'x')])),
 ('XyZ', mpart('XyZ', [(AT + '; filename="a"', A), (AT, E), (FI, 'x')])),
 ('XyZ', mpart('XyZ', [(AT + '\r\nContent-Transfer-Encoding: base64', 'eyJ9'), (FI, 'x')])),
 ('XyZ', mpart('XyZ', [('Content-Disposition: form-data; name="x"; name="attributes"', A), (FI, 'x')])),
 ('XyZ', mpart('XyZ', [(AT, A), (FI, 'x')]).replace(b'\r\n', b'\n')),
 ('XyZ', mpart('XyZ', [(AT, A), (FI, 'x'), (AT, E)])),
 ('XyZ', mpart('XyZ', [('Content-Disposition: form-data;\r\n name="attributes"', A), (FI, 'x')])),
 ('XyZ', b'pre\r\n' + mpart('XyZ', [(AT, A), (FI, 'x')])),
 ('XyZ', mpart('XyZ', [(AT, A), (FI, 'x')]) + b'tail'),
]
for i,(b,body) in enumerate(mbodies):
    ct = f'multipart/form-data; boundary={b}\n'.encode()
    n = i % 3
    splits = b''.join(struct.pack('<H', random.randint(0, len(body))) for _ in range(n))
    put('multipart', 'seed-%d' % i, ct + bytes([n]) + splits + body)
