"""What /video obeys and moderators change: quotas, blocks, channel rules, the audit log, the policy gate.

Discord-free and torch-free: the ui layer shows it, the jobs' admission applies it; stored through storage.
"""
