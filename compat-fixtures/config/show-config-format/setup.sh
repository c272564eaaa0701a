printf 'l1\nl2\n' > multi.txt
