printf 'filecontent\n' > content.txt
printf 'line1\nline2\n' > content2.txt
printf 'crlf\r\n' > crlf.txt
printf 'two\n\n' > two.txt
printf 'nonl' > nonl.txt
printf '' > empty.txt
printf 'cr\r' > cr.txt
