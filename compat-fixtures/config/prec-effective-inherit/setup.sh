mkdir c1 c2
