mkdir -p globdir/sub.conf
: > globdir/a.conf
: > globdir/b.conf
: > globdir/c.txt
printf 'r1\nr2 with space\n\nr4' > lines.txt
