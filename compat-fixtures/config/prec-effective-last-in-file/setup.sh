mkdir c1 c2 c3
