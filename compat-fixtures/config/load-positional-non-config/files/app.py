def application(env, sr):
    return []
