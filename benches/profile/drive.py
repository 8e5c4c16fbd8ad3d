#!/usr/bin/env python3
"""Trivial runs (bash, /bin/true) against a warmbox serve on 127.0.0.1:PORT from one keep-alive client: drive.py PORT N."""
import http.client, sys, time, json
port=int(sys.argv[1]); n=int(sys.argv[2])
c=http.client.HTTPConnection("127.0.0.1",port)
body=json.dumps({"profile":"bash","cmd":["/bin/true"]})
t=time.time(); bad=0
for i in range(n):
    c.request("POST","/v1/run",body,{"Content-Type":"application/json"})
    r=c.getresponse(); d=r.read()
    if r.status!=200 or b'"status":"ok"' not in d: bad+=1; 
    if bad==1 and r.status!=200: print(d[:300]); bad+=1
el=time.time()-t
print(f"{n} runs in {el:.2f}s, {1000*el/n:.3f} ms/run, {bad} bad")
