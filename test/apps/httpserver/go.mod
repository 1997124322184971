module github.com/golens/golens/test/apps/httpserver

go 1.21
