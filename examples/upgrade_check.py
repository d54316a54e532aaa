#!/usr/bin/env python3
"""A database written by an older build, opened by a newer one (docs/benchmarks.md, "Where a
sale's bytes go"): the old binary takes a receipt, two sales and a return; the new one must read
the sale, the stock and the EPCIS export back unchanged, replay a retried sale, take a return
against the old sale (and refuse one beyond what was sold), and sell on.
Usage: examples/upgrade_check.py OLD_STORENODE NEW_STORENODE"""
import http.client, json, os, socket, subprocess, sys, time, tempfile
OLD, NEW = sys.argv[1], sys.argv[2]
d = tempfile.mkdtemp(prefix='mig-', dir='/var/tmp')
def free_port():
    s = socket.socket(); s.bind(('127.0.0.1', 0)); p = s.getsockname()[1]; s.close(); return p
port = free_port(); TOKEN='bench-token-0123456789abcdef'
open(f'{d}/c.toml','w').write(f'[node]\ntenant = "t"\nstore_id = "s1"\ndata_dir = "{d}"\n[log]\nlevel = "warn"\n[api]\nlisten = "127.0.0.1:{port}"\n[[api.terminals]]\nid = "pos1"\ntoken = "{TOKEN}"\n')
open(f'{d}/cat.csv','w').write('sku,name,price_minor,currency,tax_class,variable_measure,gtins\nMUG,Mug,500,EUR,standard,false,4012345000108\nTEA,Tea,300,EUR,standard,false,\n')
subprocess.run([OLD,'--config',f'{d}/c.toml','catalog','import',f'{d}/cat.csv'],check=True,stdout=subprocess.DEVNULL)
def start(b):
    p = subprocess.Popen([b,'--config',f'{d}/c.toml','run'], stderr=open(f'{d}/err.log','a'))
    for _ in range(400):
        try:
            c = http.client.HTTPConnection('127.0.0.1', port); c.request('GET','/readyz'); r=c.getresponse(); r.read()
            if r.status == 200: return p
        except OSError: pass
        time.sleep(0.05)
    raise SystemExit('not ready')
def call(m, path, body=None, key=None):
    c = http.client.HTTPConnection('127.0.0.1', port)
    h = {'Authorization': f'Bearer {TOKEN}', 'Content-Type':'application/json'}
    if key: h['Idempotency-Key'] = key
    c.request(m, path, json.dumps(body) if body is not None else None, h); r = c.getresponse(); t = r.read()
    return r.status, (json.loads(t) if t else None)
p = start(OLD)
assert call('POST','/v1/receipts',{'reference':'GR1','lines':[{'sku':'MUG','quantity':10},{'sku':'TEA','quantity':5}]},'r1')[0] in (200,201)
s1 = call('POST','/v1/sales',{'lines':[{'sku':'MUG','quantity':2},{'gtin':'4012345000108','quantity':1}],'payments':[{'method':'card','amount_minor':1500}]},'s1')
s2 = call('POST','/v1/sales',{'lines':[{'sku':'TEA','quantity':1}],'payments':[{'method':'cash','amount_minor':1000}]},'s2')
assert s1[0]==201 and s2[0]==201, (s1, s2)
assert call('POST','/v1/returns',{'sale_id':s1[1]['sale_id'],'lines':[{'line_no':1,'quantity':1}]},'ret1')[0] in (200,201)
old_sale = call('GET', f"/v1/sales/{s1[1]['sale_id']}")
old_stock = call('GET','/v1/stock/MUG')
old_epcis = call('GET','/v1/epcis/events')
p.terminate(); p.wait()
p = start(NEW)
try:
    assert call('GET', f"/v1/sales/{s1[1]['sale_id']}") == old_sale, 'sale read back differs'
    assert call('GET','/v1/stock/MUG') == old_stock
    new_epcis = call('GET','/v1/epcis/events')
    for e in (old_epcis, new_epcis): e[1].pop('creationDate', None)
    import difflib
    if new_epcis != old_epcis:
        a=json.dumps(old_epcis,indent=1,sort_keys=True).splitlines(); b=json.dumps(new_epcis,indent=1,sort_keys=True).splitlines()
        print('\n'.join(list(difflib.unified_diff(a,b,lineterm=''))[:40]))
        raise SystemExit('EPCIS export differs')
    # retried sale from before the upgrade replays; return against an old sale still works
    assert call('POST','/v1/sales',{'lines':[{'sku':'TEA','quantity':1}],'payments':[{'method':'cash','amount_minor':1000}]},'s2') == s2
    r = call('POST','/v1/returns',{'sale_id':s1[1]['sale_id'],'lines':[{'line_no':1,'quantity':1}]},'ret2'); assert r[0] in (200,201), r
    r = call('POST','/v1/returns',{'sale_id':s1[1]['sale_id'],'lines':[{'line_no':1,'quantity':1}]},'ret3'); assert r[0] == 422, r
    s3 = call('POST','/v1/sales',{'lines':[{'sku':'MUG','quantity':1}],'payments':[{'method':'cash','amount_minor':1000}]},'s3'); assert s3[0]==201, s3
    assert call('GET', f"/v1/sales/{s3[1]['sale_id']}")[0] == 200
    ev = call('GET','/v1/epcis/events')
    print('ok: sales', s1[1]['sale_id'], s2[1]['sale_id'], s3[1]['sale_id'], 'epcis status', ev[0], 'events before', len(json.dumps(old_epcis[1])), 'after', len(json.dumps(ev[1])))
finally:
    p.terminate(); p.wait()
    import shutil; shutil.rmtree(d)
