mkdir c2
