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
