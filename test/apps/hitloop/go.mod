module github.com/golens/golens/test/apps/hitloop

go 1.21
