"""The lab: a loopback WinRM fleet that stands in for Windows hosts in the tests. It is a test double.

It serves WS-Management on 127.0.0.1 so that Ansible's real connection plugins talk to it as they would to
Windows, recognises the collection's static host scripts by header and hash, and answers each with a Python twin
of that script over a simulated host state. It runs no PowerShell and proves nothing about PowerShell semantics.
"""
