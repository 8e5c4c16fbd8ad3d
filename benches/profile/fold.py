#!/usr/bin/env python3
"""Sorts perf DWARF samples of the warmbox server by call path into the categories of
docs/server-cpu.md: fold.py SCRIPT_OUTPUT [BLOCKING_TIDS]."""
import sys, collections, re
data=open(sys.argv[1]).read().split('\n\n')
BLOCKING=set(sys.argv[2].split(',')) if len(sys.argv)>2 else set()
cats=collections.Counter(); sub=collections.Counter(); unk=collections.Counter(); tot=0
kern_leaf=collections.defaultdict(collections.Counter)
def has(frames, s): return any(s in f for f in frames)
for blk in data:
    lines=[l for l in blk.split('\n') if l.strip()]
    if not lines: continue
    tid=lines[0].strip()
    frames=[l.strip().split(' ',1)[1] if ' ' in l.strip() else '' for l in lines[1:]]
    if not frames: continue
    tot+=1
    f=frames
    sched = has(f,'finish_task_switch') or has(f,'__schedule')
    if has(f,'Sandbox::start_container'):
        c='create (blocking pool)'
        for k,n in [('CgroupBackend>::create','cgroup mkdir x4 + limits'),('clone_init_blocking','fork server request/reply'),
                    ('write_id_maps','uid/gid maps'),('send_go','send go'),('add_process','cgroup.procs move x3'),
                    ('prepare_accounting','open accounting files'),('Uuid','uuid')]:
            if has(f,k): s=n;break
        else: s='other'
    elif has(f,'Remains as core::ops::drop::Drop'):
        c='destroy (blocking pool)'
        for k,n in [('release_kernel_caches','kmem usage read'),('cgroup::remove_cgroup_dir','cgroup rmdir x3'),('V1Cgroup as warmbox_sandbox::cgroup::Cgroup>::destroy','cgroup rmdir x3'),('pidfd_reap','reap (waitid)'),('poll','poll pidfd'),('drop_in_place','drop fds/cgroup')]:
            if has(f,k): s=n;break
        else: s='other'
    elif has(f,'background_priority'):
        c='blocking: setpriority'; s=''
    elif has(f,'leave_warm_up_priority'):
        c='create (async)'; s='setpriority x2 (leave warm-up)'
    elif has(f,'Sandbox::create'):
        c='create (async)'
        if has(f,'channel::send'): s='send setup frame'
        elif has(f,'channel::recv') or has(f,'Container::recv'): s='recv ready'
        elif has(f,'UnixStream::from_std') or has(f,'set_nonblocking'): s='register channel'
        elif has(f,'fork_server'): s='fork server lookup'
        elif has(f,'spawn_blocking') or has(f,'blocking::pool'): s='spawn_blocking (wake a pool thread)'
        else: s='other'
    elif has(f,'run_io'):
        c='run (async, step.rs run_io)'
        for k,n in [('set_limits','cgroup set_limits'),('start_accounting','start_accounting (2 writes)'),('stdin_memfd','stdin memfd'),
                    ('output_pipe','pipes'),('channel::send','send job frame + fds'),('channel::recv','recv exit report'),
                    ('usage','cgroup usage reads'),('cpu_ns','cgroup cpu_ns'),('process_cpu_ns','init cpu clock'),
                    ('clock_gettime','init cpu clock'),('drop_in_place','drops (close fds, deregister)'),('AsyncFd','tokio registration'),('Registration','tokio registration'),('PollEvented','tokio registration'),
                    ('read_some','pipe reads'),('sleep','timers'),('alloc','alloc')]:
            if has(f,k): s=n;break
        else: s='other'
    elif has(f,'Container::destroy') or has(f,'Container as core::ops::drop::Drop'):
        c='destroy (async)'; s='AsyncFd/pidfd + spawn_blocking' if not has(f,'pidfd_signal') else 'pidfd_signal SIGKILL'
    elif has(f,'Pool::take') or has(f,'Pool::refill'):
        c='pool take/refill'; s=''
    elif has(f,'serde_json'):
        c='JSON (serde_json)'; s=''
    elif has(f,'tracing'):
        c='logging (tracing)'; s=''
    elif has(f,'prometheus') or has(f,'metrics'):
        c='metrics'; s=''
    elif has(f,'validate') or has(f,'ValidatedRequest'):
        c='request validation'; s=''
    elif has(f,'hyper') or has(f,'axum') or has(f,'httparse') or has(f,'tower'):
        c='HTTP (hyper/axum)'
        if has(f,'sendto') or has(f,'__sys_sendto') or has(f,'tcp_sendmsg') or has(f,'writev') : s='socket write'
        elif has(f,'tcp_recvmsg') or has(f,'sys_recvfrom') or has(f,'sys_read'): s='socket read'
        else: s='other'
    elif has(f,'Context::park') or has(f,'park_internal') or has(f,'park_timeout') or has(f,'Driver::turn'):
        c='tokio worker park/unpark (idle, epoll, futex)'; s= 'sched switch' if sched else ('epoll' if has(f,'epoll') else 'other')
    elif has(f,'blocking::pool'):
        c='blocking pool thread park/unpark'; s='sched switch' if sched else 'other'
    elif has(f,'Runner::'):
        c='runner (other)'; s=''
    elif has(f,'schedule_task') or has(f,'notify') or has(f,'wake'):
        c='tokio wake'; s=''
    else:
        c='other'; s=''
        unk[' <- '.join(x[:60] for x in f[:4])]+=1
    cats[c]+=1; sub[(c,s)]+=1
    if sched: sub[(c,'  of which in context switch')]+=1
print(f"{tot} samples")
for c,n in cats.most_common():
    print(f"{100*n/tot:5.1f}%  {c}")
    for (cc,s),m in sorted(sub.items(), key=lambda x:-x[1]):
        if cc==c and s: print(f"        {100*m/tot:5.1f}%  {s}")
print("\nunknown top:")
for k,n in unk.most_common(25): print(f"{100*n/tot:5.2f}% {k}")
